/* Finding a symbol in a loaded vDSO image (no libc): walk PT_DYNAMIC for the dynamic symbol
 * and string tables and count the symbols with DT_HASH, or with DT_GNU_HASH when there is no
 * DT_HASH. Symbol versions are ignored (the names we look up are unique). Shared by the guest
 * program and the native harness. */
#ifndef KTLS_BENCH_VDSO_SYM_H
#define KTLS_BENCH_VDSO_SYM_H

#include <elf.h>

static int vs_streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* `base` is where the image's first byte is (AT_SYSINFO_EHDR); addresses in the image are
 * relative to its lowest PT_LOAD vaddr. Returns 0 when the symbol is missing. */
static void *vdso_sym(const void *base, const char *name)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const char *b = (const char *)base;
	if (!eh || eh->e_ident[0] != 0x7f || eh->e_ident[1] != 'E' || eh->e_ident[2] != 'L' ||
	    eh->e_ident[3] != 'F')
		return 0;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(b + eh->e_phoff);
	Elf64_Addr load = (Elf64_Addr)-1;
	const Elf64_Dyn *dyn = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < load)
			load = ph[i].p_vaddr;
		if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const Elf64_Dyn *)(b + ph[i].p_offset);
	}
	if (!dyn || load == (Elf64_Addr)-1)
		return 0;
	const Elf64_Sym *sym = 0;
	const char *str = 0;
	const Elf64_Word *hash = 0, *gnu = 0;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		const char *p = b + (dyn->d_un.d_ptr - load);
		switch (dyn->d_tag) {
		case DT_SYMTAB: sym = (const Elf64_Sym *)p; break;
		case DT_STRTAB: str = p; break;
		case DT_HASH: hash = (const Elf64_Word *)p; break;
		case DT_GNU_HASH: gnu = (const Elf64_Word *)p; break;
		}
	}
	if (!sym || !str || (!hash && !gnu))
		return 0;
	unsigned long count = 0;
	if (hash) {
		count = hash[1];
	} else {
		/* GNU hash: nbuckets, symoffset, bloom_size, bloom_shift, bloom[], buckets[],
		 * chains[]; the last symbol is at the end of the chain of the highest bucket. */
		Elf64_Word nbuckets = gnu[0], symoffset = gnu[1], bloom = gnu[2];
		const Elf64_Word *buckets = gnu + 4 + bloom * 2;
		const Elf64_Word *chains = buckets + nbuckets;
		Elf64_Word last = 0;
		for (Elf64_Word i = 0; i < nbuckets; i++)
			if (buckets[i] > last)
				last = buckets[i];
		if (last < symoffset)
			count = symoffset;
		else {
			while (!(chains[last - symoffset] & 1))
				last++;
			count = last + 1;
		}
	}
	for (unsigned long i = 0; i < count; i++) {
		if (sym[i].st_shndx == SHN_UNDEF || !sym[i].st_name)
			continue;
		if (ELF64_ST_TYPE(sym[i].st_info) != STT_FUNC)
			continue;
		if (vs_streq(str + sym[i].st_name, name))
			return (void *)(b + (sym[i].st_value - load));
	}
	return 0;
}

#endif
