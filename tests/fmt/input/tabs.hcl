volume "tabs" {
	name	=	"x"
	policy = policy.p	# tab before
}
