//! Thunderbird (and Firefox) profiles as text: `profiles.ini` parsed into profiles and the one
//! the application starts with, the `lock` symlink's target ("IP:+PID") and the kernel's list of
//! file locks (`/proc/locks`) read for a lock on `.parentlock`. Pure: text in, values out.

use std::path::{Path, PathBuf};

/// `profiles.ini` files larger than this are not read (a real one is a few hundred bytes).
pub const MAX_PROFILES_INI: u64 = 256 * 1024;
/// Profiles read from one `profiles.ini` at most.
const MAX_PROFILES: usize = 256;

/// One `[ProfileN]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `Name=`, or the folder's name when there is none.
    pub name: String,
    /// The profile folder: `Path=` under the folder of `profiles.ini` when `IsRelative=1`.
    pub path: PathBuf,
    /// `Default=1`.
    pub default: bool,
}

/// What a `profiles.ini` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilesIni {
    pub profiles: Vec<Profile>,
    /// The `Default=` of each `[Install…]` section (one per installation of the application),
    /// resolved like a profile's path.
    pub install_defaults: Vec<PathBuf>,
}

impl ProfilesIni {
    /// Parses `text`, the `profiles.ini` in `base`. Lenient: lines that are not `[section]` or
    /// `key=value` are skipped, a profile without `Path=` is left out, and nothing fails.
    pub fn parse(base: &Path, text: &str) -> ProfilesIni {
        #[derive(Default)]
        struct Section {
            name: String,
            values: Vec<(String, String)>,
        }
        let mut sections: Vec<Section> = Vec::new();
        for line in text.trim_start_matches('\u{feff}').lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                if sections.len() > 4 * MAX_PROFILES {
                    break;
                }
                sections.push(Section {
                    name: name.trim().to_owned(),
                    values: Vec::new(),
                });
            } else if let (Some(section), Some((key, value))) =
                (sections.last_mut(), line.split_once('='))
            {
                section
                    .values
                    .push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let mut ini = ProfilesIni::default();
        for section in &sections {
            let get = |key: &str| {
                section
                    .values
                    .iter()
                    .rev()
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v.as_str())
            };
            let lower = section.name.to_ascii_lowercase();
            if lower.starts_with("profile") && ini.profiles.len() < MAX_PROFILES {
                let Some(path) = get("Path").filter(|p| !p.is_empty()) else {
                    continue;
                };
                // Absent IsRelative means relative, as the application writes it.
                let relative = get("IsRelative") != Some("0");
                let path = resolve(base, path, relative);
                let name = get("Name")
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| folder_name(&path));
                ini.profiles.push(Profile {
                    name,
                    path,
                    default: get("Default") == Some("1"),
                });
            } else if lower.starts_with("install")
                && let Some(path) = get("Default").filter(|p| !p.is_empty())
            {
                // Install sections name the profile by its Path= as written (relative or not).
                let path = resolve(base, path, !Path::new(path).is_absolute());
                if !ini.install_defaults.contains(&path) {
                    ini.install_defaults.push(path);
                }
            }
        }
        ini
    }

    /// The profile the application starts with: the one every `[Install…]` section names,
    /// else the one marked `Default=1`, else the only one. None when that cannot be told.
    pub fn default_profile(&self) -> Option<&Profile> {
        if let [path] = self.install_defaults.as_slice()
            && let Some(profile) = self.profiles.iter().find(|p| &p.path == path)
        {
            return Some(profile);
        }
        if self.install_defaults.len() > 1 {
            return None;
        }
        let marked: Vec<&Profile> = self.profiles.iter().filter(|p| p.default).collect();
        match (marked.as_slice(), self.profiles.as_slice()) {
            ([one], _) => Some(one),
            ([], [only]) => Some(only),
            _ => None,
        }
    }
}

fn resolve(base: &Path, path: &str, relative: bool) -> PathBuf {
    if relative {
        base.join(path)
    } else {
        PathBuf::from(path)
    }
}

fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Who a profile's `lock` symlink says holds the profile: its target is "IP:+PID" (or "IP:PID"
/// when the application holds no fcntl lock beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub address: std::net::Ipv4Addr,
    pub pid: u32,
}

/// Parses a `lock` symlink's target; None when it is not "IP:[+]PID".
pub fn parse_lock_target(target: &str) -> Option<LockOwner> {
    let (address, pid) = target.rsplit_once(':')?;
    let pid = pid.strip_prefix('+').unwrap_or(pid);
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(LockOwner {
        address: address.parse().ok()?,
        pid: pid.parse().ok().filter(|&pid| pid > 0)?,
    })
}

/// Whether `/proc/locks` (its text) lists a lock of any kind (POSIX, OFD, flock), held or
/// waited for, on the file with inode number `inode`. Only the inode is compared: the device
/// number there is not always the one `stat` gives (btrfs subvolumes, overlay mounts), and a
/// lock on another file system's file with the same number only makes the answer cautious.
pub fn proc_locks_hold(text: &str, inode: u64) -> bool {
    text.lines().any(|line| {
        line.split_whitespace().any(|field| {
            let mut parts = field.split(':');
            matches!(
                (parts.next(), parts.next(), parts.next(), parts.next()),
                (Some(major), Some(minor), Some(ino), None)
                    if u32::from_str_radix(major, 16).is_ok()
                        && u32::from_str_radix(minor, 16).is_ok()
                        && ino.parse::<u64>() == Ok(inode)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const THUNDERBIRD: &str = "\
[Install4F96D1932A9F858E]\r
Default=k3x7.default-release\r
Locked=1\r
\r
[Profile1]\r
Name=default\r
IsRelative=1\r
Path=ab12.default\r
Default=1\r
\r
[Profile0]\r
Name=default-release\r
IsRelative=1\r
Path=k3x7.default-release\r
\r
[General]\r
StartWithLastProfile=1\r
Version=2\r
";

    #[test]
    fn the_install_default_wins_over_default_1() {
        let base = Path::new("/home/u/.thunderbird");
        let ini = ProfilesIni::parse(base, THUNDERBIRD);
        assert_eq!(ini.profiles.len(), 2);
        assert_eq!(ini.profiles[0].name, "default");
        assert!(ini.profiles[0].default);
        assert_eq!(ini.profiles[1].path, base.join("k3x7.default-release"));
        let chosen = ini.default_profile().expect("a default");
        assert_eq!(chosen.name, "default-release");
    }

    #[test]
    fn default_1_then_the_only_profile_then_none() {
        let base = Path::new("/b");
        let ini = ProfilesIni::parse(
            base,
            "[Profile0]\nName=a\nPath=a\n[Profile1]\nName=b\nPath=/abs/b\nIsRelative=0\nDefault=1\n",
        );
        let chosen = ini.default_profile().unwrap();
        assert_eq!(
            (chosen.name.as_str(), chosen.path.as_path()),
            ("b", Path::new("/abs/b"))
        );

        let ini = ProfilesIni::parse(base, "[Profile0]\nPath=x.default\n");
        assert_eq!(ini.default_profile().unwrap().name, "x.default");

        let ini = ProfilesIni::parse(
            base,
            "[Profile0]\nName=a\nPath=a\n[Profile1]\nName=b\nPath=b\n",
        );
        assert_eq!(ini.default_profile(), None, "two profiles, neither marked");

        // Two installations naming different profiles: ambiguous.
        let ini = ProfilesIni::parse(
            base,
            "[InstallA]\nDefault=a\n[InstallB]\nDefault=b\n[Profile0]\nName=a\nPath=a\nDefault=1\n[Profile1]\nName=b\nPath=b\n",
        );
        assert_eq!(ini.default_profile(), None);
    }

    #[test]
    fn garbage_is_skipped_and_never_panics() {
        let base = Path::new("/b");
        for text in [
            "",
            "\u{feff}",
            "no sections at all\nPath=x",
            "[Profile0\nPath=x",
            "[Profile0]\nName=nopath",
            "[Profile0]\nPath=\n",
            "[]\n=\n==\n[Install]\nDefault=\n",
            "[Profile0]\n\u{0}\u{1}=\u{7f}\nPath=ü/ß\n",
        ] {
            let ini = ProfilesIni::parse(base, text);
            let _ = ini.default_profile();
        }
        let ini = ProfilesIni::parse(base, "[Profile0]\nPath=ü/ß\n");
        assert_eq!(ini.profiles[0].path, base.join("ü/ß"));
        // Bounded: a huge file yields at most MAX_PROFILES profiles.
        let many: String = (0..10_000)
            .map(|i| format!("[Profile{i}]\nPath=p{i}\n"))
            .collect();
        assert_eq!(ProfilesIni::parse(base, &many).profiles.len(), MAX_PROFILES);
    }

    #[test]
    fn lock_targets() {
        assert_eq!(
            parse_lock_target("127.0.1.1:+4242"),
            Some(LockOwner {
                address: [127, 0, 1, 1].into(),
                pid: 4242
            })
        );
        assert_eq!(parse_lock_target("10.0.0.5:77").map(|o| o.pid), Some(77));
        for bad in [
            "",
            ":",
            "127.0.0.1:",
            "127.0.0.1:+",
            "host:+12",
            "1.2.3.4:+-1",
            "1.2.3.4:+0",
            "1.2.3.4:+99999999999",
        ] {
            assert_eq!(parse_lock_target(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn proc_locks() {
        let text = "\
1: POSIX  ADVISORY  WRITE 1234 00:2e:918273 0 EOF
2: FLOCK  ADVISORY  WRITE 99 fd:01:5 0 EOF
2: -> FLOCK  ADVISORY  WRITE 100 fd:01:77 0 EOF
3: OFDLCK ADVISORY  READ  -1 08:02:31337 0 EOF
";
        assert!(proc_locks_hold(text, 918273));
        assert!(proc_locks_hold(text, 31337));
        assert!(proc_locks_hold(text, 77));
        assert!(!proc_locks_hold(text, 1234), "a pid is not an inode");
        assert!(!proc_locks_hold(text, 9182));
        assert!(!proc_locks_hold("", 5));
        assert!(!proc_locks_hold("garbage: : :: x:y:z", 5));
    }
}
