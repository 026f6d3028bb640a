service "db" {
container = "shop-db-1"
verify = [
"pg_isready",
"-U",
"postgres",
]
depends_on = [service.cache,
service.queue]
volumes = [
    volume.pgdata, volume.wal,
    volume.archive
  ]
}

locals {
  nested = [
    [1, 2],
    [
      3,
      4,
    ],
  ]
  objects = [
    {
      name = "a"
      size = 1
    },
    {
      name = "b"
    },
  ]
  together = [{
    name = "c"
  }, {
    name = "d"
  }]
  map = {
    a = 1
    bb = [
      "x",
    ]
    ccc = {
      deep = true
    }
  }
  call = join(",", [
    "a",
    "b",
  ])
  args = format(
    "%s-%s",
    "a",
    "b"
  )
  empty_list = [
  ]
  empty_object = {
  }
}
