#!/bin/sh
# make deb: build vkws_VERSION_ARCH.deb with dpkg-deb from a hardened
# build in build-deb/ (Debian's dpkg-buildflags). Usage:
#   packaging/debian/build.sh BINARY HOST_BINARY OUTDIR
# BINARY goes into the package; HOST_BINARY (this machine's build of the
# same source) prints the flag table that becomes the man page's OPTIONS,
# so the page and --help never disagree. Prints the .deb's path.
set -e
bin=$1
host=$2
out=$3
here=$(dirname "$0")
version=$(sed -n 's/^#define VKWS_VERSION "\(.*\)"$/\1/p' vkws.h)
arch=${DEB_ARCH:-$(dpkg --print-architecture)}
root=$out/root
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/etc/vkws" \
    "$root/lib/systemd/system" "$root/usr/share/man/man1" \
    "$root/usr/share/doc/vkws"

strip=${STRIP:-strip}
$strip --remove-section=.comment --remove-section=.note -o \
    "$root/usr/bin/vkws" "$bin"
chmod 0755 "$root/usr/bin/vkws"
install -m 0644 "$here/vkws.conf" "$root/etc/vkws/vkws.conf"
install -m 0644 "$here/vkws.service" "$root/lib/systemd/system/vkws.service"
install -m 0644 "$here/copyright" "$root/usr/share/doc/vkws/copyright"
sed "s/@VERSION@/$version/" "$here/changelog" |
    gzip -9n >"$root/usr/share/doc/vkws/changelog.gz"

# The OPTIONS of the man page, from the flag table (vkws --help): each
# "  --name ARG   text" line and the indented lines after it.
"$host" --help | awk '
function flush() { if (name != "") { print ".TP"; print head; print text } }
function esc(s) { gsub(/\\/, "\\e", s); gsub(/-/, "\\-", s); return s }
/^  --/ {
	flush()
	name = $1; arg = ""
	rest = substr($0, 3 + length(name))
	if (substr(rest, 1, 1) == " " && substr(rest, 2, 1) != " ") {
		arg = $2; rest = substr(rest, 2 + length(arg))
	}
	sub(/^ +/, "", rest)
	head = ".B " esc(name)
	if (arg != "") head = ".BI " esc(name) " \" " esc(arg) "\""
	text = esc(rest)
	next
}
/^                           / && name != "" {
	s = $0; sub(/^ +/, "", s); text = text " " esc(s); next
}
{ flush(); name = "" }
END { flush() }' >"$out/options.man"
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(stat -c %Y "$here/vkws.1.in")}" +%Y-%m-%d)
awk -v opts="$out/options.man" '
/^@OPTIONS@$/ { while ((getline l < opts) > 0) print l; next } { print }' \
    "$here/vkws.1.in" | sed "s/@VERSION@/$version/; s/@DATE@/$date/" |
    gzip -9n >"$root/usr/share/man/man1/vkws.1.gz"

install -m 0644 "$here/conffiles" "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$root/DEBIAN/$s"
done
(cd "$root" && find . -type f ! -path './DEBIAN/*' | sed 's|^\./||' |
    LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
depends="libc6 (>= 2.34), libbearssl0 (>= 0.6)"
sed "s/@VERSION@/$version/; s/@ARCH@/$arch/; s/@SIZE@/$size/; \
    s/@DEPENDS@/$depends/" "$here/control.in" >"$root/DEBIAN/control"
deb=$out/vkws_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
