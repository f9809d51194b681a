/* json.h - a small JSON reader, for labyrinth-bench's --json output. */
#ifndef LB_TOOL_JSON_H
#define LB_TOOL_JSON_H

#include <stdbool.h>
#include <stddef.h>

enum tj_type { TJ_NULL, TJ_BOOL, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };

struct tj {
    enum tj_type type;
    bool b;
    double num;
    char *str;        /* TJ_STR: the unescaped string                  */
    size_t n;         /* TJ_ARR, TJ_OBJ: number of members             */
    struct tj **kid;  /* members                                        */
    char **key;       /* TJ_OBJ: their keys                             */
};

/* Parse a whole document; NULL with a message in err on failure. */
struct tj *tj_parse(const char *text, char *err, size_t errlen);
void tj_free(struct tj *v);
/* A member of an object, or NULL. */
const struct tj *tj_get(const struct tj *obj, const char *key);
/* A number member, or NaN when absent or not a number. */
double tj_num(const struct tj *obj, const char *key);
/* A string member, or "" when absent. */
const char *tj_str(const struct tj *obj, const char *key);

#endif
