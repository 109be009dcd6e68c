#!/bin/bash
# helm test: one real payment end to end through the public API — a test merchant and key (admin API), two accounts,
# a deposit, a payment, polled until completed — then the key is revoked. Plain bash over /dev/tcp (HTTP/1.0, so
# every answer ends with the connection): the API image has no curl. Every step is bounded.
# Env: API_HOST, API_PORT, ADMIN_TOKEN; optional TEST_MERCHANT (default helm-test), CURRENCY (EUR), TIMEOUT_SECONDS (120).
set -euo pipefail
merchant=${TEST_MERCHANT:-helm-test}
currency=${CURRENCY:-EUR}
deadline=$(( $(date +%s) + ${TIMEOUT_SECONDS:-120} ))
run="ht-$(date +%s)-$RANDOM"

# request METHOD PATH TOKEN [BODY] [IDEMPOTENCY-KEY]: sets $status and $body.
request() {
  local method=$1 path=$2 token=$3 payload=${4:-} key=${5:-} answer
  exec 3<>"/dev/tcp/$API_HOST/$API_PORT"
  {
    printf '%s %s HTTP/1.0\r\nHost: %s\r\nAuthorization: Bearer %s\r\n' "$method" "$path" "$API_HOST" "$token"
    if [ -n "$key" ]; then printf 'Idempotency-Key: %s\r\n' "$key"; fi
    printf 'Content-Type: application/json\r\nContent-Length: %s\r\n\r\n%s' "${#payload}" "$payload"
  } >&3
  answer=$(timeout 30 cat <&3)
  exec 3>&-
  status_line=${answer%%$'\r\n'*}   # no pipe into head: under pipefail an early close is a SIGPIPE failure
  status=$(printf '%s' "$status_line" | cut -d' ' -f2)
  body=${answer#*$'\r\n\r\n'}
}

field() { printf '%s' "$body" | sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

expect() {
  if [ "$status" != "$1" ]; then
    echo "FAILED: $2 answered $status (expected $1): $body" >&2
    exit 1
  fi
  echo "ok: $2"
}

request POST /admin/v1/merchants "$ADMIN_TOKEN" "{\"merchantId\":\"$merchant\",\"name\":\"helm test\"}"
# The region that is standby now (whatever role it was installed with: the lease decides) takes no writes, and says
# so: no payment here; the active region's helm test makes one.
if [ "$status" = 503 ] && [[ "$body" == *region-not-writable* ]]; then
  echo "ok: this region takes no writes now (region-not-writable: the other region is active); no payment here"
  exit 0
fi
case "$status" in 200|201) echo "ok: test merchant $merchant" ;; *) expect 201 "create merchant" ;; esac
request POST "/admin/v1/merchants/$merchant/keys" "$ADMIN_TOKEN" '{}'
expect 201 "issue a test key"
key=$(field key)
key_id=$(field keyId)
revoke() { request DELETE "/admin/v1/merchants/$merchant/keys/$key_id" "$ADMIN_TOKEN" && echo "cleanup: key $key_id revoked ($status)"; }
trap revoke EXIT

request POST /v1/accounts "$key" "{\"accountId\":\"$run-debtor\",\"currency\":\"$currency\"}"
expect 201 "open $run-debtor"
request POST /v1/accounts "$key" "{\"accountId\":\"$run-creditor\",\"currency\":\"$currency\"}"
expect 201 "open $run-creditor"
request POST "/v1/accounts/$run-debtor/deposits" "$key" "{\"amountMinor\":100,\"currency\":\"$currency\"}" "$run-deposit"
expect 201 "deposit 100 minor units"
request POST /v1/payments "$key" \
  "{\"debtorAccountId\":\"$run-debtor\",\"creditorAccountId\":\"$run-creditor\",\"amountMinor\":100,\"currency\":\"$currency\",\"reference\":\"helm test\"}" \
  "$run-payment"
case "$status" in 201|202) ;; *) expect 201 "create the payment" ;; esac
payment=$(field paymentId)
echo "ok: payment $payment accepted"

while [ "$(date +%s)" -lt "$deadline" ]; do
  request GET "/v1/payments/$payment" "$key"
  state=$(field status)
  case "$state" in
    completed) echo "ok: payment $payment completed"; exit 0 ;;
    failed|compensated) echo "FAILED: payment $payment ended $state: $body" >&2; exit 1 ;;
  esac
  sleep 1
done
echo "FAILED: payment $payment not completed within ${TIMEOUT_SECONDS:-120} s (last: $state)" >&2
exit 1
