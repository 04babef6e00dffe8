/* pacctl_log_tool — `pacctl log ...` as a stand-alone program for tests:
 *   pacctl_log_tool log verify [--json] [--strict] FILE
 *   pacctl_log_tool log cat [--topic TOPIC] FILE
 * Exit code as pacctl_log_main (clients/pacctl_log.h). */
#include "pacctl_log.h"

int main(int argc, char **argv)
{
    if (argc < 2)
        return pacctl_log_main(0, argv + argc);
    return pacctl_log_main(argc - 1, argv + 1);
}
