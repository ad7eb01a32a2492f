//! File syscalls, interim: writes to fds 1 and 2 reach the console; every other file call
//! is ENOSYS (logged once) until the VFS (`ktls-vfs`) is wired in.
use super::SysResult;
use ktls_abi::Errno;
pub fn read(_fd: u64, _b: u64, _l: u64) -> SysResult {
    super::unimplemented_syscall(super::current_nr())
}
pub fn write(fd: u64, buf: u64, len: u64) -> SysResult {
    let mut k = alloc::vec![0u8; len.min(65536) as usize];
    crate::mm::uaccess::copy_from_user(&mut k, buf)?;
    crate::console::write(&k, fd == 2);
    Ok(k.len() as u64)
}
macro_rules! enosys { ($($n:ident($($a:ident),*));*;) => { $(pub fn $n($($a: u64),*) -> SysResult { $(let _ = $a;)* super::unimplemented_syscall(super::current_nr()) })* } }
enosys! {
    openat(a,b,c,d); close(a); fstatat(a,b,c,d); fstat(a,b); lseek(a,b,c); ioctl(a,b,c); pread(a,b,c,d); pwrite(a,b,c,d);
    readv(a,b,c); faccessat(a,b,c,d); pipe2(a,b); dup(a); dup2(a,b); fcntl(a,b,c); getcwd(a,b); chdir(a); fchdir(a);
    renameat(a,b,c,d); mkdirat(a,b,c); unlinkat(a,b,c); symlinkat(a,b,c); readlinkat(a,b,c,d); getdents64(a,b,c);
    ppoll(a,b,c,d,e); dup3(a,b,c); statx(a,b,c,d,e);
}
pub fn writev(fd: u64, iov: u64, n: u64) -> SysResult {
    let mut total = 0;
    for i in 0..n {
        let v = crate::mm::uaccess::UserPtr::<ktls_abi::fs::Iovec>::new(iov + i * 16).read()?;
        total += write(fd, v.iov_base, v.iov_len)?;
    }
    Ok(total)
}
pub fn poll(_a: u64, _b: u64, _c: i64) -> SysResult {
    super::unimplemented_syscall(super::current_nr())
}
pub fn mappable_file(_fd: u64, _p: u64, _f: u64) -> Result<&'static [u8], Errno> {
    Err(Errno::EBADF)
}
