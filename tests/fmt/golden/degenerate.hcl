locals {
  open_close = [1,
  2]
  call = foo({
    a = 1
  })
  two_closers = [{
    a = [1,
  2] }]
  many = [[[
    1
  ]]]
  mixed = { a = [
    1,
  ] }
}
