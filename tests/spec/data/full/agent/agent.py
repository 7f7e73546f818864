print("refunding")
