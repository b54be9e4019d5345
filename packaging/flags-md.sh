#!/bin/sh
# Print the flag table of `vkws --help` as the Markdown table of README
# "Command line and config file" (make readme-flags; tests/test_config.py
# checks the README holds exactly this). Usage: flags-md.sh [VKWS]
"${1:-./vkws}" --help | awk '
function flush() {
	if (name == "") return
	gsub(/\|/, "\\|", text)
	printf "| `%s` | %s | %s |\n", name, arg == "" ? "-" : "`" arg "`", text
}
BEGIN { print "| flag (config key: the same without `--`) | value | meaning |"; print "|---|---|---|" }
/^  --/ {
	flush()
	name = $1; arg = ""
	rest = substr($0, 3 + length(name))
	if (substr(rest, 1, 1) == " " && substr(rest, 2, 1) != " ") {
		arg = $2; rest = substr(rest, 2 + length(arg))
	}
	sub(/^ +/, "", rest)
	text = rest
	next
}
/^                           / && name != "" {
	s = $0; sub(/^ +/, "", s); text = text " " s; next
}
{ flush(); name = "" }
END { flush() }'
