public enum AdaptcPlaceholder {}
