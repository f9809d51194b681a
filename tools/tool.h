/* tool.h - shared by the labyrinth command's subcommands. */
#ifndef LB_TOOL_H
#define LB_TOOL_H

#include <labyrinth.h>
#include <stdbool.h>
#include <stdint.h>

int tool_demo(int argc, char **argv);

/* Parse a non-negative number with an optional unit suffix from units
 * ("s", "ms", "us" for durations: result in microseconds; "k", "M" for
 * counts).  Returns false on a malformed value. */
bool tool_parse_u64(const char *s, uint64_t *out);
bool tool_parse_duration_us(const char *s, uint64_t *out);

#endif
