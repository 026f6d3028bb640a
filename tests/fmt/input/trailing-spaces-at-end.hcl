volume "last" {
  name = "x"
}   