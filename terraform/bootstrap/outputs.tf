output "state_bucket" {
  description = "Name of the state bucket (the `bucket` of every backend \"s3\" block)."
  value       = aws_s3_bucket.state.id
}

output "lock_table" {
  description = "Name of the DynamoDB lock table (the `dynamodb_table` of every backend \"s3\" block)."
  value       = aws_dynamodb_table.locks.name
}

output "kms_key_arn" {
  description = "KMS key that encrypts the state (the `kms_key_id` of every backend \"s3\" block)."
  value       = aws_kms_key.state.arn
}
