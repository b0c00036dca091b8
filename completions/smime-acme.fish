# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_smime_acme_global_optspecs
    string join \n config= state-dir= v/verbose q/quiet json h/help V/version
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

complete -c smime-acme -n "__fish_smime_acme_needs_command" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_needs_command" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -l json -d 'Print one JSON object on stdout, nothing else'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -s V -l version -d 'Print version'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "obtain" -d 'Get a certificate for EMAIL: order it, answer the CA\'s challenge mail, save a PKCS#12 bundle'
complete -c smime-acme -n "__fish_smime_acme_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l server -d 'ACME directory URL of the CA' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l ca-bundle -d 'Extra trusted roots (PEM) for HTTPS, IMAP and SMTP' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l imap -d 'IMAP server [default: the address\'s domain, port by security]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l imap-security -d 'IMAP connection security [default: tls]' -r -f -a "tls\t''
starttls\t''
plain\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l imap-user -d 'IMAP user name [default: EMAIL]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l smtp -d 'SMTP submission server [default: the IMAP host, port by security]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l smtp-security -d 'SMTP connection security [default: tls]' -r -f -a "tls\t''
starttls\t''
plain\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l smtp-user -d 'SMTP user name [default: the IMAP user]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l password-file -d 'Read the mail password from this file (first line)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l password-command -d 'Run this command (with sh -c) and take the mail password from its first output line' -r
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
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l p12-password-file -d 'Read the PKCS#12 password from this file (env SMIME_ACME_P12_PASSWORD; else one is generated)' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l out -d 'Also write the PKCS#12 bundle here' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l eab-kid -d 'External account binding: the key identifier the CA gave you' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l eab-hmac-key-file -d 'External account binding: file holding the base64url MAC key the CA gave you' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l challenge-auth -d 'How to check the challenge mail is from the CA: dkim, authentication-results:<AUTHSERV-ID>, or none (insecure) [default: dkim]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l dns-server -d 'DNS server for DKIM key lookups [default: the system\'s]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l token-join -d 'How the CA joins the token parts: string (most CAs) or bytes [default: string]' -r -f -a "string\t''
bytes\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l challenge-timing -d 'When to tell the CA the challenge is answered: auto (after the reply, or early if no mail comes), reply-first, post-first [default: auto]' -r -f -a "auto\t''
reply-first\t''
post-first\t''"
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l timeout -d 'Overall wait for the CA and the mail, e.g. 90s, 30m, 1h [default: 30m]' -r
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l config -d 'Configuration file [default: <config dir>/smime-acme/config.toml]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l state-dir -d 'Where accounts, keys and certificates are kept [default: <data dir>/smime-acme]' -r -F
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l agree-tos -d 'Agree to the CA\'s terms of service (otherwise asked on a terminal)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -s v -l verbose -d 'Say more (repeat for more detail)'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -s q -l quiet -d 'Print nothing unless something failed'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -l json -d 'Print one JSON object on stdout, nothing else'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand obtain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand help; and not __fish_seen_subcommand_from obtain help" -f -a "obtain" -d 'Get a certificate for EMAIL: order it, answer the CA\'s challenge mail, save a PKCS#12 bundle'
complete -c smime-acme -n "__fish_smime_acme_using_subcommand help; and not __fish_seen_subcommand_from obtain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
