locals {
  café      = "e with acute, one code point"
  combining = "café" # combining accent
  emoji     = "👍🏽"    # a thumb with a skin tone
  wide      = "日本語"  # wide characters
  flag      = "🇫🇷"    # a flag
  x         = 1      # aligned after all of them
}
