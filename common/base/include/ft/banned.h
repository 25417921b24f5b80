/*
 * ft/banned.h - functions that make mistakes easy. Using one after this
 * header is included fails to compile with an error naming it. Use
 * ft_strlcpy, snprintf or struct ft_buf instead. (git's banned.h.)
 */
#ifndef FT_BANNED_H
#define FT_BANNED_H

#define FT_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) FT_BANNED(strcpy)
#undef strcat
#define strcat(x, y) FT_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) FT_BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) FT_BANNED(strncat)
#undef strtok
#define strtok(x, y) FT_BANNED(strtok)
#undef sprintf
#define sprintf(...) FT_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) FT_BANNED(vsprintf)
#undef gets
#define gets(x) FT_BANNED(gets)

#endif
