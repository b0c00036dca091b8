# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_smime_acme_global_optspecs
    string join \n config= state-dir= v/verbose q/quiet json wait-lock= log-file= h/help V/version
end

function __fish_smime_acme_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_smime_acme_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_smime_acme_using_subcommand
    set -l cmd (__fish_smime_acme_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c smime-acme -n "__fish_smime_acme_needs_command" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_needs_command" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_needs_command" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_needs_command" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s V -l version -d 'Print version'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "obtain" -d 'Get a certificate for EMAIL: order it, answer the CA\'s challenge mail, save a PKCS#12 bundle'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "renew" -d 'Renew the certificates that are due, with the settings each was obtained with'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "revoke" -d 'Revoke a certificate, signed by the account key or by the certificate\'s own key'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "account" -d 'Manage the ACME account kept for a CA: register, show, update contacts, roll over its key, deactivate it'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "list" -d 'List the certificates in the state folder: address, serial, expiry, next renewal, status'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "show" -d 'Show one address\'s current certificate, its renewal time and files, and its history'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "export" -d 'Write an address\'s bundle again: in another PKCS#12 format, as PEM, or with every key ever issued for it (so a mail client can still read mail encrypted to old certificates)'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "provision" -d 'Get certificates for many mailboxes listed in a manifest, several at once'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "doctor" -d 'Check everything obtain needs for an address, one line each'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "forget" -d 'Stop renewing an address; with --purge, remove everything kept for it'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "completions" -d 'Print the shell completion script for SHELL'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "man" -d 'Write the man pages (smime-acme.1 and one per subcommand) into DIR'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "install" -d 'Put an address\'s current certificate and key into a mail client: Thunderbird, or any NSS database (Evolution and Chromium share ~/.pki/nssdb)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l server -d 'ACME directory URL of the CA, or the name of a known CA: castle (https://acme.castle.cloud/acme/directory) or castle-staging (https://acme-staging.castle.cloud/acme/directory)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS, IMAP and SMTP' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l imap -d 'IMAP server; the port defaults by security (993 tls, 143 starttls) [default: discovered: DNS SRV, autoconfig, usual host names]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l imap-security -d 'IMAP connection security [default: tls]' -r -f -a "tls\t''
starttls\t''
plain\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l imap-user -d 'IMAP user name [default: EMAIL, or the login name a discovered autoconfig document gives]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l smtp -d 'SMTP submission server; the port defaults by security (465 tls, 587 starttls) [default: the IMAP host when --imap is given, else discovered]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l smtp-security -d 'SMTP connection security [default: tls]' -r -f -a "tls\t''
starttls\t''
plain\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l smtp-user -d 'SMTP user name [default: the IMAP user]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l master-user -d 'Log in to IMAP and SMTP as this administrator (a Dovecot master user, a Cyrus or Stalwart admin) on behalf of the user, with the administrator\'s password (SASL PLAIN with an authorization identity)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l master-separator -d 'With --master-user: log in as USER<SEP>ADMIN instead (Dovecot\'s auth_master_user_separator, e.g. "*")' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l password-file -d 'Read the mail password from this file (first line)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l password-command -d 'Run this command (with sh -c) and take the mail password from its first output line' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l oauth-token-command -d 'Log in with OAuth2: run this command (with sh -c) for an access token, its first output line (e.g. `oama access EMAIL`, `mutt_oauth2.py TOKENFILE`, `oauth2l fetch --credentials FILE --scope https://mail.google.com/`); run again when a server refuses the token' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l oauth-token-url -d 'Log in with OAuth2: get access tokens from this token endpoint with a refresh token (https, or http to a loopback host); tokens are cached in the state folder until shortly before they expire' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l oauth-client-id -d 'The OAuth2 client ID the refresh token was issued to (with --oauth-token-url)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l oauth-client-secret-file -d 'Read the OAuth2 client secret from this file, for clients that have one (with --oauth-token-url)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l oauth-refresh-token-file -d 'Read the OAuth2 refresh token from this file (first line; env SMIME_ACME_OAUTH_REFRESH_TOKEN); a new one the endpoint returns is written back to it' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l oauth-mechanism -d 'SASL mechanism for OAuth2 logins: auto, xoauth2, oauthbearer. auto takes OAUTHBEARER (the standard, RFC 7628) when the server offers it, else XOAUTH2 (the older form Gmail and Microsoft 365 take) [default: auto]' -r -f -a "auto\t''
xoauth2\t''
oauthbearer\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l watch-folder -d 'Folders to watch besides INBOX (repeatable; e.g. Junk)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l key-type -d 'Certificate key type [default: rsa3072]' -r -f -a "rsa2048\t''
rsa3072\t''
rsa4096\t''
p256\t''
p384\t''
ed25519\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l usage -d 'What the certificate is for; ed25519 keys can only sign [default: both]' -r -f -a "both\t''
sign\t''
encrypt\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l p12-format -d 'PKCS#12 encryption: compat (3DES/SHA-1, imports everywhere incl. Apple) or modern (AES-256/SHA-256) [default: compat]' -r -f -a "compat\t''
modern\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l p12-password-file -d 'Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else asked on a terminal, or generated)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l out -d 'Also write the PKCS#12 bundle here (and a generated or kept password beside it, as PATH.password)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l deploy-hook -d 'Run this command (with sh -c) after the certificate is saved, and after each renewal (kept with the settings); SMIME_ACME_EMAIL, SMIME_ACME_FOLDER, SMIME_ACME_P12, SMIME_ACME_P12_PASSWORD_FILE, SMIME_ACME_KEY, SMIME_ACME_CERT, SMIME_ACME_CHAIN and SMIME_ACME_FULLCHAIN name the address and the files' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l eab-kid -d 'External account binding: the key identifier the CA gave you' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l eab-hmac-key-file -d 'External account binding: file holding the base64url MAC key the CA gave you' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l challenge-auth -d 'How to check the challenge mail is from the CA: dkim, authentication-results:<AUTHSERV-ID>, or none (insecure) [default: dkim]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l dns-server -d 'DNS server for DKIM key lookups, mail server discovery and the mail servers\' addresses [default: the system\'s]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l autoconfig-url -d 'Where to fetch the autoconfig document (https://) when the mail servers are discovered, instead of autoconfig.<domain> and <domain>/.well-known' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l token-join -d 'How the CA joins the token parts: auto (as learned from this CA, else as the list of known CAs says, else string; when the CA rejects the reply for a token the joins disagree on, ordered once more with the other join, which is then kept for the CA), string (most CAs) or bytes (CASTLE); a given join is never retried [default: auto]' -r -f -a "auto\t''
string\t''
bytes\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l challenge-timing -d 'When to tell the CA the challenge is answered: auto (after the reply, or after 15 s if no mail comes; at once for a CA seen to send the mail only then, as kept in the state folder), reply-first, post-first [default: auto]' -r -f -a "auto\t''
reply-first\t''
post-first\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l timeout -d 'Overall wait for the CA and the mail, e.g. 90s, 30m, 1h [default: 30m]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l new-p12-password -d 'Do not reuse the PKCS#12 password kept for the address: ask for a new one on a terminal, else generate one; renewals then reuse the new one'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l agree-tos -d 'Agree to the CA\'s terms of service (otherwise asked on a terminal)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l days -d 'Renew when fewer than N days remain (instead of the CA\'s window or a third of the lifetime)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l deploy-hook -d 'Run this command (with sh -c) after each renewal, instead of the one kept from obtain; SMIME_ACME_EMAIL, SMIME_ACME_FOLDER, SMIME_ACME_P12, SMIME_ACME_P12_PASSWORD_FILE, SMIME_ACME_KEY, SMIME_ACME_CERT, SMIME_ACME_CHAIN and SMIME_ACME_FULLCHAIN name the address and the new files' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l timeout -d 'Overall wait for the CA and the mail, per certificate [default: as obtained, else 30m]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -s j -l jobs -d 'Renew this many certificates at once' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l force -d 'Renew now, whatever the dates say (also revoked certificates)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l reuse-key -d 'Certify the current key again instead of making a fresh one'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l new-p12-password -d 'Protect the new bundles with a new PKCS#12 password (generated) instead of the kept one'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l dry-run -d 'Say what would be renewed and why; change nothing and contact no mail server'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand renew" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l cert -d 'The certificate to revoke (PEM)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l reason -d 'Why (omitted when not given; "unspecified" is never sent)' -r -f -a "key-compromise\t''
superseded\t''
affiliation-changed\t''
cessation-of-operation\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l key -d 'The certificate\'s key (PKCS#8 PEM), for --cert with --sign-with-cert-key when the certificate is not in the state folder' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l server -d 'ACME directory URL, or a known CA\'s name (castle, castle-staging) [default: where the certificate was obtained]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l sign-with-cert-key -d 'Sign the request with the certificate\'s own key instead of the account key'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand revoke" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -f -a "register" -d 'Create the account (a new ES256 key kept in the state folder)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -f -a "show" -d 'Show the account as the CA has it'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -f -a "update" -d 'Replace the account\'s contact addresses'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -f -a "rollover" -d 'Replace the account key with a new one (RFC 8555 key change)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and not __fish_seen_subcommand_from register show update rollover deactivate" -f -a "deactivate" -d 'Deactivate the account for good; the CA refuses it afterwards'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l contact -d 'Contact address (repeatable)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l eab-kid -d 'External account binding: the key identifier the CA gave you' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l eab-hmac-key-file -d 'External account binding: file holding the base64url MAC key the CA gave you' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l agree-tos -d 'Agree to the CA\'s terms of service (otherwise asked on a terminal)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from register" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l contact -d 'Contact address (repeatable)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from rollover" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l yes -d 'Do not ask for confirmation'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand list" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand show" -s h -l help -d 'Print help'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l format -d 'compat (3DES/SHA-1), modern (AES-256/SHA-256), pem (key and certificates), or mobileconfig (an Apple configuration profile for iPhone, iPad and Mac holding compat PKCS#12; the password is not in it, the device asks for it) [default: compat]' -r -f -a "compat\t''
modern\t''
pem\t''
mobileconfig\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l out -d 'Where to write (0600)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l p12-password-file -d 'Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else asked on a terminal, or generated)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l all-keys -d 'Every key and certificate ever issued for the address, not only the current one'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand export" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -s j -l jobs -d 'Mailboxes worked at once' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l shard -d 'Only the mailboxes of shard K out of N (e.g. 2/3)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l ca-requests -d 'Requests in flight to one CA at most' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l server -d 'ACME directory URL of the CA, or a known CA\'s name (castle, castle-staging), for every mailbox [default: the manifest\'s, else the configuration file\'s]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS, IMAP and SMTP, for every mailbox [default: the manifest\'s]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l eab-kid -d 'External account binding: the key identifier the CA gave you' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l eab-hmac-key-file -d 'External account binding: file holding the base64url MAC key the CA gave you' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l contact -d 'Contact address of the account when one is registered (repeatable) [default: the manifest\'s first mailbox]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l timeout -d 'Overall wait for the CA and the mail, per mailbox, e.g. 90s, 30m [default: 30m]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l force -d 'Get a new certificate even where a valid one is held and not yet due'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l dry-run -d 'Say what would be done for each mailbox; contact nothing'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l agree-tos -d 'Agree to the CA\'s terms of service (otherwise asked on a terminal)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand provision" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l server -d 'ACME directory URL of the CA, or the name of a known CA: castle (https://acme.castle.cloud/acme/directory) or castle-staging (https://acme-staging.castle.cloud/acme/directory)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS, IMAP and SMTP' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l imap -d 'IMAP server; the port defaults by security (993 tls, 143 starttls) [default: discovered: DNS SRV, autoconfig, usual host names]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l imap-security -d 'IMAP connection security [default: tls]' -r -f -a "tls\t''
starttls\t''
plain\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l imap-user -d 'IMAP user name [default: EMAIL, or the login name a discovered autoconfig document gives]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l smtp -d 'SMTP submission server; the port defaults by security (465 tls, 587 starttls) [default: the IMAP host when --imap is given, else discovered]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l smtp-security -d 'SMTP connection security [default: tls]' -r -f -a "tls\t''
starttls\t''
plain\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l smtp-user -d 'SMTP user name [default: the IMAP user]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l master-user -d 'Log in to IMAP and SMTP as this administrator (a Dovecot master user, a Cyrus or Stalwart admin) on behalf of the user, with the administrator\'s password (SASL PLAIN with an authorization identity)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l master-separator -d 'With --master-user: log in as USER<SEP>ADMIN instead (Dovecot\'s auth_master_user_separator, e.g. "*")' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l password-file -d 'Read the mail password from this file (first line)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l password-command -d 'Run this command (with sh -c) and take the mail password from its first output line' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l oauth-token-command -d 'Log in with OAuth2: run this command (with sh -c) for an access token, its first output line (e.g. `oama access EMAIL`, `mutt_oauth2.py TOKENFILE`, `oauth2l fetch --credentials FILE --scope https://mail.google.com/`); run again when a server refuses the token' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l oauth-token-url -d 'Log in with OAuth2: get access tokens from this token endpoint with a refresh token (https, or http to a loopback host); tokens are cached in the state folder until shortly before they expire' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l oauth-client-id -d 'The OAuth2 client ID the refresh token was issued to (with --oauth-token-url)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l oauth-client-secret-file -d 'Read the OAuth2 client secret from this file, for clients that have one (with --oauth-token-url)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l oauth-refresh-token-file -d 'Read the OAuth2 refresh token from this file (first line; env SMIME_ACME_OAUTH_REFRESH_TOKEN); a new one the endpoint returns is written back to it' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l oauth-mechanism -d 'SASL mechanism for OAuth2 logins: auto, xoauth2, oauthbearer. auto takes OAUTHBEARER (the standard, RFC 7628) when the server offers it, else XOAUTH2 (the older form Gmail and Microsoft 365 take) [default: auto]' -r -f -a "auto\t''
xoauth2\t''
oauthbearer\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l watch-folder -d 'Folders to watch besides INBOX (repeatable; e.g. Junk)' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l key-type -d 'Certificate key type [default: rsa3072]' -r -f -a "rsa2048\t''
rsa3072\t''
rsa4096\t''
p256\t''
p384\t''
ed25519\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l usage -d 'What the certificate is for; ed25519 keys can only sign [default: both]' -r -f -a "both\t''
sign\t''
encrypt\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l p12-format -d 'PKCS#12 encryption: compat (3DES/SHA-1, imports everywhere incl. Apple) or modern (AES-256/SHA-256) [default: compat]' -r -f -a "compat\t''
modern\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l p12-password-file -d 'Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else asked on a terminal, or generated)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l out -d 'Also write the PKCS#12 bundle here (and a generated or kept password beside it, as PATH.password)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l deploy-hook -d 'Run this command (with sh -c) after the certificate is saved, and after each renewal (kept with the settings); SMIME_ACME_EMAIL, SMIME_ACME_FOLDER, SMIME_ACME_P12, SMIME_ACME_P12_PASSWORD_FILE, SMIME_ACME_KEY, SMIME_ACME_CERT, SMIME_ACME_CHAIN and SMIME_ACME_FULLCHAIN name the address and the files' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l eab-kid -d 'External account binding: the key identifier the CA gave you' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l eab-hmac-key-file -d 'External account binding: file holding the base64url MAC key the CA gave you' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l challenge-auth -d 'How to check the challenge mail is from the CA: dkim, authentication-results:<AUTHSERV-ID>, or none (insecure) [default: dkim]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l dns-server -d 'DNS server for DKIM key lookups, mail server discovery and the mail servers\' addresses [default: the system\'s]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l autoconfig-url -d 'Where to fetch the autoconfig document (https://) when the mail servers are discovered, instead of autoconfig.<domain> and <domain>/.well-known' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l token-join -d 'How the CA joins the token parts: auto (as learned from this CA, else as the list of known CAs says, else string; when the CA rejects the reply for a token the joins disagree on, ordered once more with the other join, which is then kept for the CA), string (most CAs) or bytes (CASTLE); a given join is never retried [default: auto]' -r -f -a "auto\t''
string\t''
bytes\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l challenge-timing -d 'When to tell the CA the challenge is answered: auto (after the reply, or after 15 s if no mail comes; at once for a CA seen to send the mail only then, as kept in the state folder), reply-first, post-first [default: auto]' -r -f -a "auto\t''
reply-first\t''
post-first\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l timeout -d 'Overall wait for the CA and the mail, e.g. 90s, 30m, 1h [default: 30m]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l new-p12-password -d 'Do not reuse the PKCS#12 password kept for the address: ask for a new one on a terminal, else generate one; renewals then reuse the new one'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l agree-tos -d 'Agree to the CA\'s terms of service (otherwise asked on a terminal)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand doctor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l purge -d 'Also remove its certificates, keys and settings'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l yes -d 'Do not ask'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand forget" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l profile -d 'With --thunderbird: this profile, by its folder or its name in profiles.ini' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l nss-db -d 'Into the NSS database (cert9.db) in this folder, e.g. ~/.pki/nssdb for Evolution and Chromium' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l nss-password-file -d 'Read the database\'s primary password from this file (first line); otherwise it is asked on a terminal when the database has one' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l trust-root -d 'Also trust this root certificate (PEM) to issue email certificates, in this database only. For a CA that is not publicly trusted (a company\'s own, a test CA): mail clients already trust the public ones, and a root trusted here vouches for every address it signs for, so only a root your certificate\'s chain leads to is accepted, and only when you ask' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml if it exists, else /etc/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l wait-lock -d 'Wait this long for another run working on the same mailbox (e.g. 30s, 5m) [default: do not wait]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l log-file -d 'Also append what -v shows, timestamped, to this file (created 0600), whatever -q says; for unattended runs' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l thunderbird -d 'Into Thunderbird\'s certificate store (the default profile, or --profile)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l all-keys -d 'Every key and certificate ever issued for the address, not only the current one, so that mail encrypted to old certificates stays readable'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -l json -d 'Print JSON on stdout, nothing else: one object, or one line per certificate (renew, list)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand install" -s h -l help -d 'Print help (see more with \'--help\')'
