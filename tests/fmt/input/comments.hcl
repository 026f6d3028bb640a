# A file comment.
// Another style.
/* A block comment. */

/*
 * A multi-line block comment,
 *   indented as written.
 */
volume "data" { # after an opening brace
  name = "app_data" # the Docker volume
  policy = policy.daily    // a slash comment
  consistency = "stop" /* a block comment at the end */
  service = /* inline */ service.db
  # an indented comment
      # and one indented too far
}   # after a closing brace

policy "daily" {
  rpo = "24h"       # one
  rto = "1h" # two

  retention {
    keep_last = 7 # three
  }
  copies = [ # opens a list
    repository.primary, # first
    repository.offsite,   # second
  ] # closes it
}
# trailing spaces inside a comment stay   
#no space after the hash
//
#
