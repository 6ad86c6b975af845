/** @file
 * bkr: command-line entry point (placeholder until the subcommands land).
 */
#include <stdio.h>
int main(void)
{
	fprintf(stderr, "bkr: not built yet\n");
	return 1;
}
