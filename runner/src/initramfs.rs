//! The guest's root tree and the boot request, packed as a cpio newc initramfs.

use crate::RunError;
use ktls_cpio::Writer;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// The directory of the boot request in the guest tree.
pub const REQUEST_DIR: &str = "/.ktls";

/// A host file or directory to put in the guest tree (`--add HOST_PATH[:GUEST_PATH]`).
/// A directory is added recursively (symbolic links inside it are kept as links; a link given
/// as `host` itself is followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub host: PathBuf,
    /// Absolute guest path.
    pub guest: PathBuf,
}

impl Add {
    /// Parses `HOST_PATH:GUEST_PATH` (split at the first `:`), or `HOST_PATH` alone, which puts
    /// the file at its canonical absolute host path. The guest path must be absolute.
    pub fn parse(spec: &OsStr) -> Result<Add, RunError> {
        let bytes = spec.as_bytes();
        let (host, guest) = match bytes.iter().position(|&b| b == b':') {
            Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
            None => (bytes, None),
        };
        if host.is_empty() {
            return Err(RunError::Usage(format!(
                "--add {:?}: the host path is empty",
                spec
            )));
        }
        let host = PathBuf::from(OsStr::from_bytes(host));
        let guest = match guest {
            Some(g) => {
                let g = PathBuf::from(OsStr::from_bytes(g));
                if !g.is_absolute() {
                    return Err(RunError::Usage(format!(
                        "--add {:?}: the guest path must be absolute",
                        spec
                    )));
                }
                g
            }
            None => host.canonicalize().map_err(|e| {
                RunError::Usage(format!("--add {:?}: {}: {e}", spec, host.display()))
            })?,
        };
        Ok(Add { host, guest })
    }
}

/// Where a file's contents come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

/// One node of the guest tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, source: Source },
    Symlink { target: Vec<u8> },
}

/// The guest's file tree, keyed by normalized absolute path (`/`, `/usr`, `/usr/bin`...).
/// Parents always sort before their children, so writing in key order is a valid archive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
}

/// Normalizes an absolute guest path: no `.`, no empty components, no trailing `/`.
/// Refuses relative paths and `..`.
pub fn normalize_guest_path(p: &Path) -> Result<Vec<u8>, String> {
    if !p.is_absolute() {
        return Err(format!("guest path {} is not absolute", p.display()));
    }
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                out.push(b'/');
                out.extend_from_slice(n.as_bytes());
            }
            Component::ParentDir => {
                return Err(format!("guest path {} contains '..'", p.display()))
            }
            Component::Prefix(_) => unreachable!("no prefixes on unix"),
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

fn parent_of(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" {
        return None;
    }
    let i = path.iter().rposition(|&b| b == b'/')?;
    Some(if i == 0 { b"/" } else { &path[..i] })
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

impl Tree {
    /// A tree holding only the root directory.
    pub fn new() -> Tree {
        let mut nodes = BTreeMap::new();
        nodes.insert(b"/".to_vec(), Node::Dir { mode: 0o755 });
        Tree { nodes }
    }

    pub fn get(&self, path: &Path) -> Option<&Node> {
        self.nodes.get(&normalize_guest_path(path).ok()?)
    }

    pub fn is_dir(&self, path: &Path) -> bool {
        matches!(self.get(path), Some(Node::Dir { .. }))
    }

    /// All nodes in archive order.
    pub fn nodes(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_slice(), v))
    }

    fn ensure_parents(&mut self, path: &[u8]) -> Result<(), String> {
        let Some(parent) = parent_of(path) else {
            return Ok(());
        };
        match self.nodes.get(parent) {
            Some(Node::Dir { .. }) => Ok(()),
            Some(_) => Err(format!(
                "cannot put {} in the guest tree: {} is not a directory",
                show(path),
                show(parent)
            )),
            None => {
                let parent = parent.to_vec();
                self.ensure_parents(&parent)?;
                self.nodes.insert(parent, Node::Dir { mode: 0o755 });
                Ok(())
            }
        }
    }

    /// Inserts `node` at `path` (creating missing parent directories with mode 0755). A node
    /// already there is replaced, except that a directory stays a directory (its mode is
    /// updated) when a directory is added again; replacing a non-empty directory by a
    /// non-directory is an error.
    pub fn insert(&mut self, path: &Path, node: Node) -> Result<(), String> {
        let key = normalize_guest_path(path)?;
        if key == REQUEST_DIR.as_bytes() || key.starts_with(b"/.ktls/") {
            return Err(format!(
                "{} is reserved for the boot request",
                path.display()
            ));
        }
        self.insert_raw(key, node)
    }

    fn insert_raw(&mut self, key: Vec<u8>, node: Node) -> Result<(), String> {
        if key == b"/" && !matches!(node, Node::Dir { .. }) {
            return Err("the guest root must be a directory".into());
        }
        self.ensure_parents(&key)?;
        if let Some(Node::Dir { .. }) = self.nodes.get(&key) {
            if !matches!(node, Node::Dir { .. }) {
                let mut prefix = key.clone();
                if prefix != b"/" {
                    prefix.push(b'/');
                }
                let has_children = self
                    .nodes
                    .range(prefix.clone()..)
                    .next()
                    .is_some_and(|(k, _)| k.starts_with(&prefix));
                if has_children {
                    return Err(format!(
                        "cannot replace the directory {} (which has contents) by a file",
                        show(&key)
                    ));
                }
            }
        }
        self.nodes.insert(key, node);
        Ok(())
    }

    /// Adds a host file, symbolic link or directory (recursively) at `guest`. A symbolic link
    /// given as `host` is followed; links inside a directory are kept as links.
    pub fn add_host(&mut self, host: &Path, guest: &Path) -> Result<(), String> {
        let meta = std::fs::metadata(host).map_err(|e| format!("{}: {e}", host.display()))?;
        self.add_host_entry(host, guest, meta)
    }

    fn add_host_entry(
        &mut self,
        host: &Path,
        guest: &Path,
        meta: std::fs::Metadata,
    ) -> Result<(), String> {
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target =
                std::fs::read_link(host).map_err(|e| format!("{}: {e}", host.display()))?;
            self.insert(
                guest,
                Node::Symlink {
                    target: target.into_os_string().into_vec(),
                },
            )
        } else if ft.is_file() {
            self.insert(
                guest,
                Node::File {
                    mode,
                    source: Source::Host(host.to_owned()),
                },
            )
        } else if ft.is_dir() {
            self.insert(guest, Node::Dir { mode })?;
            let mut children: Vec<_> = std::fs::read_dir(host)
                .map_err(|e| format!("{}: {e}", host.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", host.display()))?;
            children.sort_by_key(|c| c.file_name());
            for c in children {
                let meta = c
                    .metadata()
                    .map_err(|e| format!("{}: {e}", c.path().display()))?;
                self.add_host_entry(&c.path(), &guest.join(c.file_name()), meta)?;
            }
            Ok(())
        } else {
            Err(format!(
                "{}: only regular files, directories and symbolic links can be added",
                host.display()
            ))
        }
    }

    /// Writes the tree, in path order, then `extra` entries (already normalized absolute paths;
    /// used for the boot request), as a newc archive.
    pub fn write<W: Write>(&self, out: W, extra: &[(Vec<u8>, Node)]) -> Result<W, String> {
        let mut w = Writer::new(out);
        let io = |e: std::io::Error| e.to_string();
        for (path, node) in self.nodes.iter().chain(extra.iter().map(|(k, v)| (k, v))) {
            match node {
                Node::Dir { mode } => w.add_dir(path, *mode).map_err(io)?,
                Node::Symlink { target } => w.add_symlink(path, target).map_err(io)?,
                Node::File { mode, source } => match source {
                    Source::Bytes(b) => w.add_file(path, *mode, b).map_err(io)?,
                    Source::Host(h) => {
                        let data = std::fs::read(h).map_err(|e| format!("{}: {e}", h.display()))?;
                        w.add_file(path, *mode, &data)
                            .map_err(|e| format!("{}: {e}", h.display()))?
                    }
                },
            }
        }
        w.finish().map_err(io)
    }
}

/// The program to run and how, as the kernel will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRequest {
    /// Absolute guest path of the executable.
    pub exe: PathBuf,
    pub argv: Vec<OsString>,
    pub envp: Vec<(OsString, OsString)>,
    /// Absolute guest path of the working directory.
    pub cwd: PathBuf,
}

impl BootRequest {
    /// The `/.ktls` directory and its four files, encoded per the spec.
    pub fn entries(&self) -> Result<Vec<(Vec<u8>, Node)>, String> {
        let nul_free = |what: &str, b: &[u8]| {
            if b.contains(&0) {
                Err(format!("{what} {:?} contains a NUL byte", show(b)))
            } else {
                Ok(())
            }
        };
        let exe = self.exe.as_os_str().as_bytes();
        nul_free("the program path", exe)?;
        let mut argv = Vec::new();
        for a in &self.argv {
            nul_free("argument", a.as_bytes())?;
            argv.extend_from_slice(a.as_bytes());
            argv.push(0);
        }
        let mut envp = Vec::new();
        for (k, v) in &self.envp {
            nul_free("environment variable", k.as_bytes())?;
            nul_free("environment value", v.as_bytes())?;
            envp.extend_from_slice(k.as_bytes());
            envp.push(b'=');
            envp.extend_from_slice(v.as_bytes());
            envp.push(0);
        }
        let cwd = self.cwd.as_os_str().as_bytes();
        nul_free("the working directory", cwd)?;
        let file = |name: &str, data: Vec<u8>| {
            (
                format!("{REQUEST_DIR}/{name}").into_bytes(),
                Node::File {
                    mode: 0o444,
                    source: Source::Bytes(data),
                },
            )
        };
        Ok(vec![
            (REQUEST_DIR.as_bytes().to_vec(), Node::Dir { mode: 0o755 }),
            file("argv", argv),
            file("cwd", cwd.to_vec()),
            file("envp", envp),
            file("exe", exe.to_vec()),
        ])
    }
}

/// Finds the program like a shell would: a name containing `/` is a path (relative to `cwd`),
/// anything else is looked up in `path_var` (the host's `PATH`). Returns the canonical
/// absolute path of a regular file.
pub fn resolve_program(
    program: &OsStr,
    cwd: &Path,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, RunError> {
    let shown = Path::new(program).display();
    if program.is_empty() {
        return Err(RunError::Program("the program name is empty".into()));
    }
    let candidate = if program.as_bytes().contains(&b'/') {
        cwd.join(program)
    } else {
        let dirs = path_var.map(std::env::split_paths).into_iter().flatten();
        let mut found = None;
        for d in dirs {
            let d = if d.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                d
            };
            let c = cwd.join(d).join(program);
            if let Ok(m) = std::fs::metadata(&c) {
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    found = Some(c);
                    break;
                }
            }
        }
        found.ok_or_else(|| RunError::Program(format!("{shown}: command not found in PATH")))?
    };
    let canonical = candidate
        .canonicalize()
        .map_err(|e| RunError::Program(format!("{shown}: {e}")))?;
    let meta =
        std::fs::metadata(&canonical).map_err(|e| RunError::Program(format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(RunError::Program(format!("{shown}: not a regular file")));
    }
    Ok(canonical)
}

/// Lexically absolute form of `p` (joined to `cwd` if relative, `.` removed); `None` if it has
/// `..` components (then symbolic links make the lexical form meaningless).
fn lexical_absolute(p: &Path, cwd: &Path) -> Option<PathBuf> {
    let joined = cwd.join(p);
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// The symbolic links on the way from the path as the user wrote it to the canonical program:
/// for `/bin/busybox` on a merged-/usr system, `[("/bin", "usr/bin")]`. Only links whose parent
/// directory is itself canonical are reported, and only the first one on the path (resolving it
/// leads into the canonical tree, which the archive has).
pub fn path_aliases(as_written: &Path, cwd: &Path) -> Vec<(PathBuf, PathBuf)> {
    let Some(abs) = lexical_absolute(as_written, cwd) else {
        return Vec::new();
    };
    let mut prefix = PathBuf::from("/");
    for c in abs.components().skip(1) {
        let parent = prefix.clone();
        prefix.push(c);
        let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
            return Vec::new();
        };
        if meta.file_type().is_symlink() {
            let parent_is_canonical = parent.canonicalize().is_ok_and(|p| p == parent);
            return match std::fs::read_link(&prefix) {
                Ok(target) if parent_is_canonical => vec![(prefix, target)],
                _ => Vec::new(),
            };
        }
    }
    Vec::new()
}

/// Everything the initramfs holds for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembly {
    pub tree: Tree,
    pub request: BootRequest,
}

/// Builds the guest tree and the boot request: the `adds` (in order), the program at its
/// canonical path `exe` (with its parent directories and, best effort, the symbolic links on
/// the path as written: see [`path_aliases`]), and the request. `host_cwd` becomes the guest's
/// working directory if the tree has that directory, else `/` is used.
pub fn assemble(
    exe: &Path,
    argv: Vec<OsString>,
    envp: Vec<(OsString, OsString)>,
    host_cwd: &Path,
    adds: &[Add],
) -> Result<Assembly, RunError> {
    let mut tree = Tree::new();
    for add in adds {
        tree.add_host(&add.host, &add.guest)
            .map_err(|e| RunError::Pack(format!("--add {}: {e}", add.host.display())))?;
    }
    let meta =
        std::fs::metadata(exe).map_err(|e| RunError::Program(format!("{}: {e}", exe.display())))?;
    tree.insert(
        exe,
        Node::File {
            mode: meta.permissions().mode() & 0o7777,
            source: Source::Host(exe.to_owned()),
        },
    )
    .map_err(RunError::Pack)?;
    if let Some(argv0) = argv.first() {
        for (link, target) in path_aliases(Path::new(argv0), host_cwd) {
            if tree.get(&link).is_none() {
                // Best effort: a link that does not fit the tree is simply left out.
                let _ = tree.insert(
                    &link,
                    Node::Symlink {
                        target: target.into_os_string().into_vec(),
                    },
                );
            }
        }
    }
    let cwd = match host_cwd.canonicalize() {
        Ok(c) if tree.is_dir(&c) => c,
        _ => PathBuf::from("/"),
    };
    Ok(Assembly {
        tree,
        request: BootRequest {
            exe: exe.to_owned(),
            argv,
            envp,
            cwd,
        },
    })
}

/// Writes the archive for `assembly` to the file `dest`.
pub fn pack(assembly: &Assembly, dest: &Path) -> Result<(), RunError> {
    let extra = assembly.request.entries().map_err(RunError::Usage)?;
    let file = std::fs::File::create(dest)
        .map_err(|e| RunError::Pack(format!("{}: {e}", dest.display())))?;
    let out = assembly
        .tree
        .write(BufWriter::new(file), &extra)
        .map_err(RunError::Pack)?;
    out.into_inner()
        .map_err(|e| RunError::Pack(format!("{}: {}", dest.display(), e.error())))?
        .sync_all()
        .map_err(|e| RunError::Pack(format!("{}: {e}", dest.display())))
}

/// The archive for `assembly`, in memory.
pub fn pack_to_vec(assembly: &Assembly) -> Result<Vec<u8>, RunError> {
    let extra = assembly.request.entries().map_err(RunError::Usage)?;
    assembly
        .tree
        .write(Vec::new(), &extra)
        .map_err(RunError::Pack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ktls_cpio::entries;

    /// A fresh directory (canonical path), removed when the guard drops.
    fn temp(tag: &str) -> (crate::util::TempDir, PathBuf) {
        let t = crate::util::TempDir::new(&format!("test-{tag}")).unwrap();
        let d = t.path().canonicalize().unwrap();
        (t, d)
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    type Listing = BTreeMap<String, (u32, Vec<u8>)>;

    fn read_back(archive: &[u8]) -> Listing {
        entries(archive)
            .map(|e| {
                let e = e.unwrap();
                (show(e.name), (e.mode, e.data.to_vec()))
            })
            .collect()
    }

    #[test]
    fn guest_paths() {
        assert_eq!(normalize_guest_path(Path::new("/")).unwrap(), b"/");
        assert_eq!(
            normalize_guest_path(Path::new("/a//b/./c/")).unwrap(),
            b"/a/b/c"
        );
        assert!(normalize_guest_path(Path::new("a/b")).is_err());
        assert!(normalize_guest_path(Path::new("/a/../b")).is_err());
        assert_eq!(parent_of(b"/a/b"), Some(&b"/a"[..]));
        assert_eq!(parent_of(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent_of(b"/"), None);
    }

    #[test]
    fn add_specs() {
        let a = Add::parse(OsStr::new("/etc/hostname:/x/y")).unwrap();
        assert_eq!(a.host, Path::new("/etc/hostname"));
        assert_eq!(a.guest, Path::new("/x/y"));
        assert!(Add::parse(OsStr::new("foo:bar")).is_err());
        assert!(Add::parse(OsStr::new(":/bar")).is_err());
        let (_guard_d, d) = temp("addspec");
        let a = Add::parse(d.as_os_str()).unwrap();
        assert_eq!(a.guest, d);
        assert!(Add::parse(OsStr::new("/no/such/file/anywhere")).is_err());
    }

    #[test]
    fn program_boot_request_and_parents() {
        let (_guard_d, d) = temp("assemble");
        std::fs::create_dir_all(d.join("bin")).unwrap();
        let prog = d.join("bin/prog");
        std::fs::write(&prog, b"\x7fELF fake").unwrap();
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o750)).unwrap();
        let asm = assemble(
            &prog,
            os(&["bin/prog", "a b", "", "\u{e9}"]),
            vec![("PATH".into(), "/bin".into()), ("X".into(), "1=2".into())],
            &d,
            &[],
        )
        .unwrap();
        assert_eq!(asm.request.cwd, d, "the host cwd is in the tree");
        let listing = read_back(&pack_to_vec(&asm).unwrap());
        let rel = |p: &Path| show(p.strip_prefix("/").unwrap().as_os_str().as_bytes());
        // Every ancestor of the program is a directory.
        let mut anc = prog.parent();
        while let Some(a) = anc {
            let name = if a == Path::new("/") {
                ".".to_string()
            } else {
                rel(a)
            };
            let (mode, _) = listing
                .get(&name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(mode & ktls_cpio::S_IFMT, ktls_cpio::S_IFDIR, "{name}");
            anc = a.parent();
        }
        let (mode, data) = &listing[&rel(&prog)];
        assert_eq!(*mode, ktls_cpio::S_IFREG | 0o750);
        assert_eq!(data, b"\x7fELF fake");
        assert_eq!(listing[".ktls/exe"].1, prog.as_os_str().as_bytes());
        assert_eq!(
            listing[".ktls/argv"].1,
            "bin/prog\0a b\0\0\u{e9}\0".as_bytes()
        );
        assert_eq!(listing[".ktls/envp"].1, b"PATH=/bin\0X=1=2\0");
        assert_eq!(listing[".ktls/cwd"].1, d.as_os_str().as_bytes());
        assert_eq!(listing[".ktls"].0, ktls_cpio::S_IFDIR | 0o755);
        // The boot request comes last, after the whole tree.
        let names: Vec<String> = entries(&pack_to_vec(&asm).unwrap())
            .map(|e| show(e.unwrap().name))
            .collect();
        let first_request = names.iter().position(|n| n.starts_with(".ktls")).unwrap();
        assert!(names[first_request..]
            .iter()
            .all(|n| n.starts_with(".ktls")));
        assert_eq!(names[0], ".");
    }

    #[test]
    fn cwd_falls_back_to_root() {
        let (_guard_d, d) = temp("cwd");
        let prog = d.join("prog");
        std::fs::write(&prog, b"x").unwrap();
        let (_guard_elsewhere, elsewhere) = temp("cwd-elsewhere");
        let asm = assemble(&prog, os(&["prog"]), vec![], &elsewhere, &[]).unwrap();
        assert_eq!(asm.request.cwd, Path::new("/"));
        let listing = read_back(&pack_to_vec(&asm).unwrap());
        assert_eq!(listing[".ktls/cwd"].1, b"/");
        assert_eq!(listing[".ktls/envp"].1, b"");
    }

    #[test]
    fn adds_directories_recursively() {
        let (_guard_d, d) = temp("adds");
        let src = d.join("src");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::write(src.join("top"), b"top").unwrap();
        std::fs::write(src.join("sub/deeper/leaf"), b"leaf").unwrap();
        std::os::unix::fs::symlink("deeper/leaf", src.join("sub/link")).unwrap();
        std::fs::write(d.join("single"), b"single").unwrap();
        let prog = d.join("prog");
        std::fs::write(&prog, b"p").unwrap();
        let adds = vec![
            Add {
                host: src.clone(),
                guest: "/data".into(),
            },
            Add {
                host: d.join("single"),
                guest: "/etc/conf/single".into(),
            },
        ];
        let asm = assemble(&prog, os(&["p"]), vec![], Path::new("/"), &adds).unwrap();
        assert_eq!(asm.request.cwd, Path::new("/"));
        let l = read_back(&pack_to_vec(&asm).unwrap());
        assert_eq!(l["data"].0 & ktls_cpio::S_IFMT, ktls_cpio::S_IFDIR);
        assert_eq!(l["data/top"].1, b"top");
        assert_eq!(l["data/sub/deeper/leaf"].1, b"leaf");
        assert_eq!(
            l["data/sub/link"],
            (ktls_cpio::S_IFLNK | 0o777, b"deeper/leaf".to_vec())
        );
        assert_eq!(l["etc"].0, ktls_cpio::S_IFDIR | 0o755);
        assert_eq!(l["etc/conf/single"].1, b"single");
        // Adding into the boot request, or below a file, is refused.
        let bad = [Add {
            host: d.join("single"),
            guest: "/.ktls/exe".into(),
        }];
        assert!(matches!(
            assemble(&prog, os(&["p"]), vec![], Path::new("/"), &bad),
            Err(RunError::Pack(_))
        ));
        let bad = [
            Add {
                host: d.join("single"),
                guest: "/f".into(),
            },
            Add {
                host: d.join("single"),
                guest: "/f/g".into(),
            },
        ];
        assert!(assemble(&prog, os(&["p"]), vec![], Path::new("/"), &bad).is_err());
    }

    #[test]
    fn resolving_programs() {
        let (_guard_d, d) = temp("resolve");
        std::fs::create_dir_all(d.join("bin")).unwrap();
        let p = d.join("bin/tool");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join("bin/noexec"), b"x").unwrap();
        let path_var = std::env::join_paths([d.join("nothing"), d.join("bin")]).unwrap();
        assert_eq!(
            resolve_program(OsStr::new("tool"), &d, Some(&path_var)).unwrap(),
            p
        );
        assert_eq!(
            resolve_program(OsStr::new("bin/tool"), &d, None).unwrap(),
            p
        );
        assert_eq!(
            resolve_program(OsStr::new("./bin/../bin/tool"), &d, None).unwrap(),
            p
        );
        assert_eq!(
            resolve_program(p.as_os_str(), Path::new("/"), None).unwrap(),
            p
        );
        assert!(resolve_program(OsStr::new("noexec"), &d, Some(&path_var)).is_err());
        assert!(resolve_program(OsStr::new("missing"), &d, Some(&path_var)).is_err());
        assert!(resolve_program(OsStr::new("bin"), &d, None).is_err());
        assert!(resolve_program(OsStr::new("./bin"), &d, None).is_err());
        assert!(resolve_program(OsStr::new(""), &d, None).is_err());
    }

    #[test]
    fn symlinked_directories_on_the_written_path_are_kept() {
        let (_guard_d, d) = temp("alias");
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", d.join("bin")).unwrap();
        let p = d.join("usr/bin/tool");
        std::fs::write(&p, b"x").unwrap();
        let written = d.join("bin/tool");
        assert_eq!(
            path_aliases(&written, Path::new("/")),
            vec![(d.join("bin"), PathBuf::from("usr/bin"))]
        );
        assert_eq!(path_aliases(&p, Path::new("/")), vec![]);
        let canonical = written.canonicalize().unwrap();
        assert_eq!(canonical, p);
        let asm = assemble(
            &canonical,
            vec![written.clone().into_os_string()],
            vec![],
            Path::new("/"),
            &[],
        )
        .unwrap();
        let l = read_back(&pack_to_vec(&asm).unwrap());
        let rel = show(d.strip_prefix("/").unwrap().as_os_str().as_bytes());
        assert_eq!(
            l[&format!("{rel}/bin")],
            (ktls_cpio::S_IFLNK | 0o777, b"usr/bin".to_vec())
        );
        assert_eq!(l[&format!("{rel}/usr/bin/tool")].1, b"x");
    }

    #[test]
    fn nul_bytes_are_refused() {
        let req = BootRequest {
            exe: "/p".into(),
            argv: vec![OsString::from_vec(b"a\0b".to_vec())],
            envp: vec![],
            cwd: "/".into(),
        };
        assert!(req.entries().is_err());
    }
}
