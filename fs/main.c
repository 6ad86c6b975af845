/** @file
 * bkrfs: placeholder until the FUSE daemon lands.
 */
#include <stdio.h>
int main(void)
{
	fprintf(stderr, "bkrfs: not built yet\n");
	return 1;
}
