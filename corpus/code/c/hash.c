#include <stddef.h>
#include <stdint.h>
#include "list.h"

/* FNV-1a: small, fast, and good enough for a word table. */
uint64_t fnv1a_hash(const unsigned char *bytes, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= bytes[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct word_table {
	struct list_head *buckets;
	size_t nr_buckets;
	size_t nr_words;
};

size_t bucket_of(const struct word_table *t, const unsigned char *w, size_t len)
{
	return (size_t)(fnv1a_hash(w, len) & (t->nr_buckets - 1));
}
