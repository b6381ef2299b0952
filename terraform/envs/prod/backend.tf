# State lives in the bucket made by terraform/bootstrap. The bucket, table and key are given at init:
#   terraform init -backend-config=backend.hcl   (see backend.hcl.example)
terraform {
  backend "s3" {
    key     = "cali-housing/prod/terraform.tfstate"
    encrypt = true
  }
}
