volume "crlf" {
  name = "x" # c
    policy   = policy.p
}
