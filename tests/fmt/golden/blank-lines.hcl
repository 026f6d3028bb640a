


volume "a" {
  name = "a"



  policy = policy.p


}



policy "p" {
}


