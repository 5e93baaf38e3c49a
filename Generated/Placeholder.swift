public enum GeneratedAdaptersPlaceholder {}
