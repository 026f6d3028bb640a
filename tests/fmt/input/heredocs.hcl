locals {
  plain = <<EOT
first line
  indented line
{ braces [ brackets ( parens
# not a comment
EOT
  indented = <<-EOT
    indented content
      more
    EOT
  with_interpolation = <<EOT
value: ${ var.x }
control: %{ if true }yes%{ endif }
escaped: $${not} %%{not}
EOT
  after = "x"
  in_list = [
    <<EOT
in a list
EOT
    ,
    "next",
  ]
  in_call = trimspace(<<EOT
  call
EOT
  )
}

service "db" {
  container = "db"
  verify = ["sh", "-c", <<-SCRIPT
    pg_isready -U postgres
    SCRIPT
  ]
}
