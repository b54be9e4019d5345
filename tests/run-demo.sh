#!/bin/sh
# `make run`: start vkws on 127.0.0.1:8080 (or $VKWS_LISTEN) with a fresh
# secret and API key, and print links that open the chat as two users.
set -eu
listen=${VKWS_LISTEN:-127.0.0.1:8080}
dir=$(mktemp -d /tmp/vkws-run.XXXXXX)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secret"
key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
alice=$(./vkws token --secret-file "$dir/secret" --uid alice --ttl 86400 \
    --info '{"name":"Alice"}')
bob=$(./vkws token --secret-file "$dir/secret" --uid bob --ttl 86400 \
    --info '{"name":"Bob"}')
cat <<MSG

vkws demo (secret in $dir/secret, API key $key)

  Alice:  http://$listen/#token=$alice
  Bob:    http://$listen/#token=$bob

  WebSocket:  ws://$listen/ws?token=$alice
  Server API: VKWS_API_KEY=$key ./vkws call broadcastToAll '{"data":{"type":"notification","text":"hello"}}' --listen $listen
  Metrics:    http://$listen/metrics

MSG
exec ./vkws --listen "$listen" --secret-file "$dir/secret" --api-key "$key" \
    --echo
