//! An Apple configuration profile (`.mobileconfig`, an XML property list) that installs
//! PKCS#12 identities on iOS, iPadOS and macOS: one `com.apple.security.pkcs12` payload per
//! bundle. The bundles' password is not put into the profile (Apple allows a `Password` key),
//! so the device asks for it when the profile is installed and the file alone does not give
//! the key away. Pure apart from drawing random UUIDs.

use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

/// One PKCS#12 bundle to install.
#[derive(Debug)]
pub struct Identity<'a> {
    /// Shown by the device for the payload.
    pub name: String,
    pub p12: &'a [u8],
}

/// The profile installing `identities`, named for `email`. Identifiers and UUIDs are random,
/// so a profile made later (after a renewal) is installed beside this one rather than replacing
/// it, and the old key stays on the device to read old mail.
pub fn mobileconfig(email: &str, identities: &[Identity]) -> String {
    let profile_uuid = random_uuid();
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\t<key>PayloadContent</key>\n\t<array>\n",
    );
    for (n, identity) in identities.iter().enumerate() {
        let uuid = random_uuid();
        out.push_str("\t\t<dict>\n");
        let file = match n {
            0 => format!("{email}.p12"),
            n => format!("{email}-{n}.p12"),
        };
        let fields = [
            ("PayloadCertificateFileName", file),
            (
                "PayloadDescription",
                format!("S/MIME certificate and key for {email}"),
            ),
            ("PayloadDisplayName", identity.name.clone()),
            (
                "PayloadIdentifier",
                format!("smime-acme.{profile_uuid}.pkcs12.{uuid}"),
            ),
            ("PayloadType", "com.apple.security.pkcs12".to_owned()),
            ("PayloadUUID", uuid),
        ];
        for (key, value) in &fields {
            string_entry(&mut out, 3, key, value);
        }
        out.push_str("\t\t\t<key>PayloadContent</key>\n\t\t\t<data>\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(identity.p12);
        for line in b64.as_bytes().chunks(64) {
            out.push_str("\t\t\t");
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("\t\t\t</data>\n\t\t\t<key>PayloadVersion</key>\n\t\t\t<integer>1</integer>\n\t\t</dict>\n");
    }
    out.push_str("\t</array>\n");
    for (key, value) in [
        (
            "PayloadDescription",
            format!(
                "Installs the S/MIME certificate and key of {email} for signing and reading mail."
            ),
        ),
        ("PayloadDisplayName", format!("S/MIME: {email}")),
        ("PayloadIdentifier", format!("smime-acme.{profile_uuid}")),
        ("PayloadType", "Configuration".to_owned()),
        ("PayloadUUID", profile_uuid.clone()),
    ] {
        string_entry(&mut out, 1, key, &value);
    }
    out.push_str("\t<key>PayloadVersion</key>\n\t<integer>1</integer>\n</dict>\n</plist>\n");
    out
}

fn string_entry(out: &mut String, depth: usize, key: &str, value: &str) {
    let indent = "\t".repeat(depth);
    out.push_str(&format!(
        "{indent}<key>{}</key>\n{indent}<string>{}</string>\n",
        escape(key),
        escape(value)
    ));
}

/// `text` as XML character data: markup characters as entities, and characters XML 1.0 cannot
/// hold (most control characters) as U+FFFD.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A random (version 4) UUID in upper case, as Apple's tools write them.
///
/// # Panics
/// If the operating system's random generator fails.
pub fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator failed");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_unrepresentable_characters() {
        assert_eq!(
            escape("a<b>&\"c\"'d'\u{0}\u{1b}\tü"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\u{fffd}\u{fffd}\tü"
        );
    }

    #[test]
    fn uuids_are_random_version_4() {
        let (a, b) = (random_uuid(), random_uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "A" | "B"), "{a}");
        assert!(
            a.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }

    #[test]
    fn one_pkcs12_payload_per_identity_and_nothing_unescaped() {
        let email = "a&b<c>@example.test";
        let p12 = [0u8, 1, 2, 250, 251, 252];
        let profile = mobileconfig(
            email,
            &[
                Identity {
                    name: format!("{email} (1)"),
                    p12: &p12,
                },
                Identity {
                    name: format!("{email} (2)"),
                    p12: &p12,
                },
            ],
        );
        assert!(profile.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert_eq!(
            profile
                .matches("<string>com.apple.security.pkcs12</string>")
                .count(),
            2
        );
        assert_eq!(profile.matches("<string>Configuration</string>").count(), 1);
        assert!(profile.contains("<string>S/MIME: a&amp;b&lt;c&gt;@example.test</string>"));
        assert!(!profile.contains("a&b"), "{profile}");
        assert!(!profile.contains("<key>Password</key>"));
        assert_eq!(profile.matches("\t\t\tAAEC+vv8\n").count(), 2);
        // Every element opened is closed: a crude check that the nesting is right.
        for tag in ["dict", "array", "data", "plist"] {
            assert_eq!(
                profile.matches(&format!("<{tag}")).count(),
                profile.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }
}
