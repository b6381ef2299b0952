output "instance_id" {
  description = "ID of the k3s node (the SSM target)."
  value       = aws_instance.node.id
}

output "public_ip" {
  description = "Elastic IP of the node (Kubernetes API on 6443, ingress on 80/443)."
  value       = aws_eip.node.public_ip
}

output "data_volume_id" {
  description = "ID of the EBS data volume holding every PersistentVolume (snapshot this one to back them up)."
  value       = aws_ebs_volume.data.id
}

output "security_group_id" {
  description = "Security group of the node."
  value       = aws_security_group.node.id
}

output "kubeconfig_command" {
  description = "Fetches the kubeconfig through SSM and points it at the public IP."
  value       = "aws ssm start-session --target ${aws_instance.node.id} --document-name AWS-StartInteractiveCommand --parameters command='sudo cat /etc/rancher/k3s/k3s.yaml' | sed -n '/^apiVersion/,$p' | sed 's/127.0.0.1/${aws_eip.node.public_ip}/' > kubeconfig-cali-housing.yaml"
}

output "artifact_bucket" {
  description = "S3 bucket of MLflow's artifacts (values-prod.yaml's s3Uri) and the k3s datastore snapshots."
  value       = aws_s3_bucket.artifacts.id
}

output "agent_group_name" {
  description = "Autoscaling group of the agent nodes (start an instance refresh to roll them)."
  value       = aws_autoscaling_group.agents.name
}

output "spool_file_system_id" {
  description = "EFS file system of the inference spool (prod and staging, one access point each); the server's cloud-init writes its PersistentVolumes."
  value       = aws_efs_file_system.spool.id
}
