volume "last" {
  name = "x"
}