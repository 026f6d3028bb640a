locals {
  sum          = 1 + 2 * 3 - 4 / 5 % 6
  negative     = -1
  negated      = !true
  neg_after_op = 1 + -2
  neg_in_list  = [-1, -2]
  compare      = 1 == 2 && 3 != 4 || 5 < 6 && 7 >= 8 && 9 <= 10 && 11 > 12
  ternary      = true ? "a" : "b"
  call         = upper("x")
  args         = max(1, 2, 3)
  expand       = max(local.list...)
  index        = local.list[0]
  index2       = local.list[0][1]
  attr         = var.x.y
  legacy       = local.list.0
  splat        = local.objects[*].name
  attr_splat   = local.objects.*.name
  parens       = (1 + 2) * 3
  interp       = "${var.x}-${var.y}"
  control      = "%{for x in local.list}${x},%{endfor}"
  strip        = "${~var.x~}"
  for_list     = [for x in local.list : x * 2 if x > 1]
  for_tuple    = [for x in [1, 2] : x]
  for_object   = { for k, v in local.map : k => v }
  for_group    = { for k, v in local.map : v => k... }
  object       = { a = 1, b = 2 }
  empty        = {}
  empty_list   = []
  number       = 1.5e3
  escaped      = "a \"quoted\" \\ word"
  dollar       = "$5 and 100%"
}
