# The blog's volumes, named after the compose project.

volume "db" {
  name   = "${var.project}_db"
  policy = policy.standard
}

volume "content" {
  name   = "${var.project}_content"
  policy = policy.standard
}
