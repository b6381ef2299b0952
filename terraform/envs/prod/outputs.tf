output "public_ip" {
  description = "Public IP of the k3s node."
  value       = module.k3s_node.public_ip
}

output "instance_id" {
  description = "Instance ID of the k3s node (SSM target)."
  value       = module.k3s_node.instance_id
}

output "kubeconfig_command" {
  description = "How to fetch the kubeconfig (through SSM; the API is reachable from admin_cidrs only)."
  value       = module.k3s_node.kubeconfig_command
}

output "data_volume_id" {
  description = "EBS data volume of the node: the PersistentVolumes that survive instance replacement (back it up by snapshots)."
  value       = module.k3s_node.data_volume_id
}

output "artifact_bucket" {
  description = "S3 bucket of MLflow's artifacts and the k3s datastore snapshots."
  value       = module.k3s_node.artifact_bucket
}

output "agent_group_name" {
  description = "Autoscaling group of the agent nodes."
  value       = module.k3s_node.agent_group_name
}

output "spool_file_system_id" {
  description = "EFS file system of the inference spool of prod and staging (ReadWriteMany: inference spreads over the nodes)."
  value       = module.k3s_node.spool_file_system_id
}
