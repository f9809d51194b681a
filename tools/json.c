/*
 * json.c - a small recursive-descent JSON reader (RFC 8259), enough for
 * labyrinth-bench's output: objects, arrays, strings (\u escapes of the
 * basic plane become UTF-8), numbers, true, false, null.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tj_in {
    const char *s;
    size_t pos;
    char *err;
    size_t errlen;
    bool failed;
    unsigned depth;
};

static void tj_fail(struct tj_in *in, const char *msg)
{
    if (!in->failed)
        snprintf(in->err, in->errlen, "%s at offset %zu", msg, in->pos);
    in->failed = true;
}

static void tj_ws(struct tj_in *in)
{
    while (in->s[in->pos] == ' ' || in->s[in->pos] == '\t' || in->s[in->pos] == '\n' || in->s[in->pos] == '\r')
        in->pos++;
}

static struct tj *tj_new(enum tj_type t)
{
    struct tj *v = calloc(1, sizeof *v);
    if (v)
        v->type = t;
    return v;
}

static int tj_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *tj_string(struct tj_in *in)
{
    if (in->s[in->pos] != '"') {
        tj_fail(in, "expected a string");
        return NULL;
    }
    in->pos++;
    size_t cap = 32, n = 0;
    char *out = malloc(cap);
    if (!out) {
        tj_fail(in, "out of memory");
        return NULL;
    }
    for (;;) {
        unsigned char c = (unsigned char)in->s[in->pos];
        char buf[4];
        size_t k = 0;
        if (c == 0) {
            tj_fail(in, "unterminated string");
            break;
        }
        if (c < 0x20) {
            tj_fail(in, "control character in a string");
            break;
        }
        if (c == '"') {
            in->pos++;
            out[n] = 0;
            return out;
        }
        if (c == '\\') {
            char e = in->s[in->pos + 1];
            in->pos += 2;
            switch (e) {
            case '"': buf[k++] = '"'; break;
            case '\\': buf[k++] = '\\'; break;
            case '/': buf[k++] = '/'; break;
            case 'b': buf[k++] = '\b'; break;
            case 'f': buf[k++] = '\f'; break;
            case 'n': buf[k++] = '\n'; break;
            case 'r': buf[k++] = '\r'; break;
            case 't': buf[k++] = '\t'; break;
            case 'u': {
                unsigned u = 0;
                for (int i = 0; i < 4; i++) {
                    int h = tj_hex(in->s[in->pos + (size_t)i]);
                    if (h < 0) {
                        tj_fail(in, "bad \\u escape");
                        free(out);
                        return NULL;
                    }
                    u = u * 16 + (unsigned)h;
                }
                in->pos += 4;
                if (u < 0x80) {
                    buf[k++] = (char)u;
                } else if (u < 0x800) {
                    buf[k++] = (char)(0xc0 | (u >> 6));
                    buf[k++] = (char)(0x80 | (u & 0x3f));
                } else {
                    buf[k++] = (char)(0xe0 | (u >> 12));
                    buf[k++] = (char)(0x80 | ((u >> 6) & 0x3f));
                    buf[k++] = (char)(0x80 | (u & 0x3f));
                }
                break;
            }
            default:
                tj_fail(in, "bad escape");
                free(out);
                return NULL;
            }
        } else {
            buf[k++] = (char)c;
            in->pos++;
        }
        if (n + k + 1 > cap) {
            cap *= 2;
            char *o = realloc(out, cap);
            if (!o) {
                tj_fail(in, "out of memory");
                break;
            }
            out = o;
        }
        memcpy(out + n, buf, k);
        n += k;
    }
    free(out);
    return NULL;
}

static bool tj_add(struct tj *v, struct tj *kid, char *key)
{
    struct tj **k = realloc(v->kid, (v->n + 1) * sizeof *k);
    if (!k)
        return false;
    v->kid = k;
    if (v->type == TJ_OBJ) {
        char **ks = realloc(v->key, (v->n + 1) * sizeof *ks);
        if (!ks)
            return false;
        v->key = ks;
        v->key[v->n] = key;
    }
    v->kid[v->n++] = kid;
    return true;
}

static struct tj *tj_value(struct tj_in *in);

static struct tj *tj_container(struct tj_in *in, bool obj)
{
    struct tj *v = tj_new(obj ? TJ_OBJ : TJ_ARR);
    if (!v) {
        tj_fail(in, "out of memory");
        return NULL;
    }
    char close = obj ? '}' : ']';
    in->pos++;
    tj_ws(in);
    if (in->s[in->pos] == close) {
        in->pos++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        tj_ws(in);
        if (obj) {
            key = tj_string(in);
            if (!key)
                break;
            tj_ws(in);
            if (in->s[in->pos] != ':') {
                tj_fail(in, "expected ':'");
                free(key);
                break;
            }
            in->pos++;
        }
        struct tj *kid = tj_value(in);
        if (!kid) {
            free(key);
            break;
        }
        if (!tj_add(v, kid, key)) {
            tj_fail(in, "out of memory");
            tj_free(kid);
            free(key);
            break;
        }
        tj_ws(in);
        char c = in->s[in->pos];
        if (c == close) {
            in->pos++;
            return v;
        }
        if (c != ',') {
            tj_fail(in, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            break;
        }
        in->pos++;
    }
    tj_free(v);
    return NULL;
}

static struct tj *tj_number(struct tj_in *in)
{
    const char *p = in->s + in->pos, *q = p;
    if (*q == '-')
        q++;
    if (*q == '0')
        q++;
    else if (*q >= '1' && *q <= '9')
        while (*q >= '0' && *q <= '9')
            q++;
    else {
        tj_fail(in, "bad number");
        return NULL;
    }
    if (*q == '.') {
        q++;
        if (*q < '0' || *q > '9') {
            tj_fail(in, "bad number");
            return NULL;
        }
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-')
            q++;
        if (*q < '0' || *q > '9') {
            tj_fail(in, "bad number");
            return NULL;
        }
        while (*q >= '0' && *q <= '9')
            q++;
    }
    struct tj *v = tj_new(TJ_NUM);
    if (!v) {
        tj_fail(in, "out of memory");
        return NULL;
    }
    v->num = strtod(p, NULL);
    in->pos += (size_t)(q - p);
    return v;
}

static struct tj *tj_value(struct tj_in *in)
{
    tj_ws(in);
    if (++in->depth > 64) {
        tj_fail(in, "nested too deeply");
        return NULL;
    }
    struct tj *v = NULL;
    const char *p = in->s + in->pos;
    if (*p == '{' || *p == '[') {
        v = tj_container(in, *p == '{');
    } else if (*p == '"') {
        char *s = tj_string(in);
        if (s && (v = tj_new(TJ_STR)))
            v->str = s;
        else
            free(s);
    } else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
        if ((v = tj_new(TJ_BOOL)))
            v->b = *p == 't';
        in->pos += *p == 't' ? 4 : 5;
    } else if (!strncmp(p, "null", 4)) {
        v = tj_new(TJ_NULL);
        in->pos += 4;
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
        v = tj_number(in);
    } else {
        tj_fail(in, "unexpected character");
    }
    in->depth--;
    return v;
}

struct tj *tj_parse(const char *text, char *err, size_t errlen)
{
    struct tj_in in = {.s = text, .err = err, .errlen = errlen};
    if (errlen)
        err[0] = 0;
    struct tj *v = tj_value(&in);
    if (v) {
        tj_ws(&in);
        if (in.s[in.pos]) {
            tj_fail(&in, "trailing text");
            tj_free(v);
            v = NULL;
        }
    }
    return v;
}

void tj_free(struct tj *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        tj_free(v->kid[i]);
        if (v->key)
            free(v->key[i]);
    }
    free(v->kid);
    free(v->key);
    free(v->str);
    free(v);
}

const struct tj *tj_get(const struct tj *obj, const char *key)
{
    if (!obj || obj->type != TJ_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->key[i], key))
            return obj->kid[i];
    return NULL;
}

double tj_num(const struct tj *obj, const char *key)
{
    const struct tj *v = tj_get(obj, key);
    return v && v->type == TJ_NUM ? v->num : NAN;
}

const char *tj_str(const struct tj *obj, const char *key)
{
    const struct tj *v = tj_get(obj, key);
    return v && v->type == TJ_STR ? v->str : "";
}
