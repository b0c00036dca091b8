# Shared by the testbed scripts: where things live and which loopback ports they use.
# Sourced, not run. All state lives under $TB_STATE (target/testbed in the repository).

TB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB_REPO=$(cd "$TB_DIR/../.." && pwd)
# Resolved: `up` replaces the directory, and target/testbed may be a link to a shared one.
TB_STATE=$(realpath -m "${TESTBED_STATE:-$TB_REPO/target/testbed}")
TB_VENV=$TB_REPO/target/testbed-venv
TB_HOST=127.0.0.1

# Ports: a fixed offset from one base, so a second testbed can run beside the first.
TB_BASE=${TESTBED_PORT_BASE:-10000}
TB_PORT_DNS=$((TB_BASE + 53))
# Names under silent._domainkey.ca.test are forwarded here, where a test may listen and never
# answer (a DNS zone that hangs).
TB_PORT_DNS_SILENT=$((TB_BASE + 54))
TB_PORT_IMAP=$((TB_BASE + 143))
TB_PORT_IMAPS=$((TB_BASE + 993))
TB_PORT_LMTP=$((TB_BASE + 24))
TB_PORT_AUTH=$((TB_BASE + 12))
TB_PORT_MX=$((TB_BASE + 25))
TB_PORT_SUBMISSION=$((TB_BASE + 587))
TB_PORT_SUBMISSIONS=$((TB_BASE + 465))
# Submissions again, asking a policy service on TB_PORT_POLICY about each recipient: a test that
# listens there decides (with none listening, Postfix answers 451).
TB_PORT_SUBMISSIONS_POLICY=$((TB_BASE + 466))
TB_PORT_POLICY=$((TB_BASE + 60))
# Submissions again, with no DKIM signing: a mail server that does not sign what it sends.
TB_PORT_SUBMISSIONS_UNSIGNED=$((TB_BASE + 467))
TB_PORT_ACME=$((TB_BASE + 443))
TB_PORT_ACME_EAB=$((TB_BASE + 444))
# The OAuth2 token and introspection endpoint (tests/fake/oauth_server.py), plain HTTP.
TB_PORT_OAUTH=$((TB_BASE + 80))
# The OpenDKIM milters listen on UNIX sockets here (rsa.sock, ed.sock, verify.sock).
TB_MILTERS=$TB_STATE/dkim/milter

TB_AUTHSERV_ID=mx.example.test
TB_CA_MAILBOX=acme@ca.test
TB_CA_EAB_MAILBOX=acme-eab@ca.test

# The Dovecot master user: it logs in as any existing mailbox, at IMAP and at submission, either
# as "ADDRESS*admin" with the master password or with SASL PLAIN authzid ADDRESS, authcid admin.
TB_MASTER_USER=admin

# Every mailbox of the testbed, one per line: staff01..staff48 (two digits, as the first tests
# named them), then staff49..staff260 (staff101..staff260 for fleet tests and benchmarks).
tb_mailboxes() {
  printf '%s\n' alice@example.test bob@example.test
  printf 'staff%s@example.test\n' $(seq -w 1 48) $(seq 49 260)
  printf '%s\n' "$TB_CA_MAILBOX" "$TB_CA_EAB_MAILBOX"
  # A second mail domain, without SRV records or DKIM keys (mail settings by autoconfig).
  printf '%s@other.test\n' carol dave erin frank
}

tb_say() { printf 'testbed: %s\n' "$*"; }
tb_die() { printf 'testbed: error: %s\n' "$*" >&2; exit 1; }

# Writes template $1 (with @NAME@ placeholders, taken from the environment) to $2.
tb_render() {
  TB_TEMPLATE=$1 perl -pe 's/@([A-Z][A-Z0-9_]*)@/exists $ENV{$1} ? $ENV{$1} : die "$ENV{TB_TEMPLATE}: \@$1\@ is not set\n"/ge' \
    "$1" >"$2.tmp" && mv "$2.tmp" "$2"
}

# True when something accepts TCP connections on 127.0.0.1:$1.
tb_listening() { (exec 3<>"/dev/tcp/$TB_HOST/$1") 2>/dev/null; }

# Runs a command, printing its output only when it fails.
tb_quiet() {
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out" >&2; tb_die "failed: $*"; }
}
