//! Path resolution with Linux's rules (namei).

use alloc::vec::Vec;

use ktls_abi::fs::{NAME_MAX, PATH_MAX, X_OK};
use ktls_abi::Errno;

use crate::node::NodeRef;
use crate::{ProcessContext, Result};

/// Most symlinks one resolution follows (MAXSYMLINKS); the next is ELOOP.
pub const MAX_SYMLINKS: u32 = 40;

/// The last component of a path.
pub(crate) enum Last {
    Name(Vec<u8>),
    Dot,
    DotDot,
    /// The path was `/` (or only slashes).
    Root,
}

fn classify(comp: &[u8]) -> Last {
    match comp {
        b"." => Last::Dot,
        b".." => Last::DotDot,
        _ => Last::Name(comp.to_vec()),
    }
}

/// A path resolved up to its last component.
pub(crate) struct ParentPath {
    /// The directory the last component is (to be) in: a directory the caller may search.
    pub(crate) dir: NodeRef,
    pub(crate) last: Last,
    /// The path ended in `/`: the result must be a directory.
    pub(crate) trailing_slash: bool,
}

/// A resolved node, with the directory and name it was found under when the last step was a
/// plain name (for realpath).
pub(crate) struct Found {
    pub(crate) node: NodeRef,
    pub(crate) parent: Option<(NodeRef, Vec<u8>)>,
}

/// One path resolution: counts the symlinks followed, across nested links.
pub(crate) struct Walker<'a> {
    root: &'a NodeRef,
    ctx: &'a dyn ProcessContext,
    links: u32,
}

/// The `..` of a directory: its parent, itself for the root of the tree; ENOENT if the
/// parent is gone (a directory removed along with its parent).
pub(crate) fn dotdot(dir: &NodeRef) -> Result<NodeRef> {
    let d = dir.dir().ok_or(Errno::ENOTDIR)?.lock();
    match &d.parent {
        None => Ok(dir.clone()),
        Some(w) => w.upgrade().ok_or(Errno::ENOENT),
    }
}

/// Looks `name` up in directory `dir` (no permission check).
pub(crate) fn lookup_child(dir: &NodeRef, name: &[u8]) -> Result<NodeRef> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    let d = dir.dir().ok_or(Errno::ENOTDIR)?.lock();
    d.get(name).cloned().ok_or(Errno::ENOENT)
}

impl<'a> Walker<'a> {
    pub(crate) fn new(root: &'a NodeRef, ctx: &'a dyn ProcessContext) -> Self {
        Walker {
            root,
            ctx,
            links: 0,
        }
    }

    /// Checks that `dir` is a directory the caller may search (ENOTDIR, EACCES).
    fn enter(&self, dir: &NodeRef) -> Result<()> {
        if !dir.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        dir.permission(self.ctx, X_OK)
    }

    /// Resolves all but the last component of `path` (relative paths from `start`),
    /// following every symlink on the way. ENOENT for an empty path, ENAMETOOLONG for a
    /// path of PATH_MAX bytes or more or a component over NAME_MAX, ENOTDIR when something
    /// on the way is not a directory, EACCES without search permission, ELOOP after
    /// [`MAX_SYMLINKS`] links.
    pub(crate) fn parent(&mut self, start: &NodeRef, path: &[u8]) -> Result<ParentPath> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.len() >= PATH_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut cur = if path[0] == b'/' {
            self.root.clone()
        } else {
            start.clone()
        };
        let mut comps = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .peekable();
        let mut last = Last::Root;
        while let Some(comp) = comps.next() {
            if comps.peek().is_none() {
                last = classify(comp);
                break;
            }
            cur = self.step(&cur, comp)?;
        }
        if !matches!(last, Last::Root) {
            self.enter(&cur)?;
        }
        if let Last::Name(n) = &last {
            if n.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
        }
        Ok(ParentPath {
            dir: cur,
            last,
            trailing_slash: path.ends_with(b"/"),
        })
    }

    /// One intermediate component: `.`, `..`, or a name (following a symlink).
    fn step(&mut self, dir: &NodeRef, comp: &[u8]) -> Result<NodeRef> {
        self.enter(dir)?;
        match classify(comp) {
            Last::Dot | Last::Root => Ok(dir.clone()),
            Last::DotDot => dotdot(dir),
            Last::Name(name) => {
                let child = lookup_child(dir, &name)?;
                if child.is_symlink() {
                    Ok(self.follow(dir, &child)?.node)
                } else {
                    Ok(child)
                }
            }
        }
    }

    /// Counts one more symlink: ELOOP past [`MAX_SYMLINKS`].
    pub(crate) fn count_link(&mut self) -> Result<()> {
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(Errno::ELOOP);
        }
        Ok(())
    }

    /// Follows symlink `link`, found in `dir` (relative targets start there).
    pub(crate) fn follow(&mut self, dir: &NodeRef, link: &NodeRef) -> Result<Found> {
        self.count_link()?;
        let target = link.readlink(self.ctx)?;
        self.resolve(dir, &target, true)
    }

    /// Resolves a whole path; `follow_last` says whether a symlink as the last component is
    /// followed (it always is with a trailing slash).
    pub(crate) fn resolve(
        &mut self,
        start: &NodeRef,
        path: &[u8],
        follow_last: bool,
    ) -> Result<Found> {
        let p = self.parent(start, path)?;
        self.finish(p, follow_last)
    }

    /// Resolves the last component of a [`Walker::parent`] result.
    pub(crate) fn finish(&mut self, p: ParentPath, follow_last: bool) -> Result<Found> {
        let found = match p.last {
            Last::Root => Found {
                node: self.root.clone(),
                parent: None,
            },
            Last::Dot => Found {
                node: p.dir,
                parent: None,
            },
            Last::DotDot => Found {
                node: dotdot(&p.dir)?,
                parent: None,
            },
            Last::Name(name) => {
                let child = lookup_child(&p.dir, &name)?;
                if child.is_symlink() && (follow_last || p.trailing_slash) {
                    self.follow(&p.dir, &child)?
                } else {
                    Found {
                        node: child,
                        parent: Some((p.dir, name)),
                    }
                }
            }
        };
        if p.trailing_slash && !found.node.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        Ok(found)
    }
}
