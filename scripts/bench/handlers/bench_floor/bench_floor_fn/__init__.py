"""The floor of the API benchmark: boto3, one DynamoDB client, one item."""
