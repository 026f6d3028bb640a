volume "c" {
  name = "x"
} # no newline after this comment