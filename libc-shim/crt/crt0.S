/* ktls libc shim: the process entry point (x86_64, AT&T syntax, no preprocessor needed).
 *
 * The kernel starts the process here with %rsp at argc (argv, NULL, envp, NULL and the
 * auxiliary vector above it) and no return address. Clear the frame pointer (the end of the
 * call chain), pass the initial stack pointer to __ktls_start (libktls_shim.a), align the
 * stack as the ABI wants at a call, and never come back.
 *
 * C programs link this file (gcc assembles it: see libc-shim/README.md); Rust no_std programs
 * get it from the crate's `start` feature. */
	.text
	.globl	_start
	.type	_start, @function
_start:
	xorl	%ebp, %ebp
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	__ktls_start
	hlt
	.size	_start, . - _start
	.pushsection .note.GNU-stack, "", @progbits
	.popsection
