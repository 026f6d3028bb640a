volume "c" {
  name = "x"
}
answer    =    42    /* a block comment ends the file */