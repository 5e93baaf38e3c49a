print("adaptc")
