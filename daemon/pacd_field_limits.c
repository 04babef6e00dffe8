/* pacd-field-limits: print the field-limits table of docs/protocol.md
 * (validate_limits[] of daemon/pacd_validate.c) with its markers, to paste
 * into the document after changing a limit. */
#include <stdio.h>

#include "pacd_validate.h"

int main(void)
{
    char buf[8192];
    int n = validate_limits_markdown(buf, sizeof buf);
    if (n < 0) {
        fprintf(stderr, "pacd-field-limits: table larger than %zu bytes\n", sizeof buf);
        return 1;
    }
    printf("%s\n%s%s\n", VALIDATE_DOC_BEGIN, buf, VALIDATE_DOC_END);
    return 0;
}
