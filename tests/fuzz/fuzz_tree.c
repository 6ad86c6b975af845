/** @file
 * libFuzzer target: a tree blob (bkr_tree_parse, a leaf page or an inner
 * one), then every accessor on every entry: the entry itself, its chunks,
 * holes and xattrs, a search for its name; an inner page's children.
 */
#include "bkr/error.h"
#include "bkr/tree.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bkr_tree *t = NULL;
	uint8_t *blob = malloc(size ? size : 1);

	if (!blob)
		return 0;
	memcpy(blob, data, size);
	if (bkr_tree_parse(&t, blob, size) < 0) /* takes the blob either way */
		goto done;
	for (uint32_t i = 0; i < bkr_tree_count(t); i++) {
		if (bkr_tree_is_inner(t)) {
			const uint8_t *name;
			size_t len;
			bkr_id child;
			uint32_t entries;
			(void)bkr_tree_child(t, i, &name, &len, &child, &entries);
			continue;
		}
		bkr_entry e;
		bkr_chunk_ref *c = NULL;
		bkr_hole *h = NULL;
		bkr_xattr *x = NULL;
		size_t n;
		uint32_t at;
		if (bkr_tree_get(t, i, &e) < 0)
			continue;
		(void)bkr_tree_find(t, e.name, e.name_len, &at);
		(void)bkr_tree_chunks(t, i, &c, &n);
		(void)bkr_tree_holes(t, i, &h, &n);
		(void)bkr_tree_xattrs(t, i, &x, &n);
		free(c);
		free(h);
		free(x);
	}
done:
	bkr_tree_free(t);
	bkr_error_clear();
	return 0;
}
