/*
 * test_buf.c - struct ft_buf: growth, the hard cap, formatting, take.
 */
#include "ft/buf.h"
#include "ftest.h"

FT_TEST(buf_append_and_format)
{
	struct ft_buf b = FT_BUF_INIT(1024);
	FT_CHECK_STR(ft_buf_str(&b), "");
	FT_CHECK(ft_buf_addstr(&b, "loss=") == FT_OK);
	FT_CHECK(ft_buf_addf(&b, "%.3f step=%d", 1.25, 42) == FT_OK);
	FT_CHECK(ft_buf_addch(&b, '!') == FT_OK);
	FT_CHECK_STR(ft_buf_str(&b), "loss=1.250 step=42!");
	FT_CHECK_INT(b.len, 19);
	ft_buf_truncate(&b, 4);
	FT_CHECK_STR(b.ptr, "loss");
	ft_buf_reset(&b);
	FT_CHECK_INT(b.len, 0);
	FT_CHECK_STR(b.ptr, "");
	ft_buf_release(&b);
}

FT_TEST(buf_cap_is_hard_and_keeps_contents)
{
	struct ft_buf b = FT_BUF_INIT(10);
	FT_CHECK(ft_buf_addstr(&b, "0123456789") == FT_OK); /* exactly max */
	FT_CHECK(ft_buf_addch(&b, 'x') == FT_ELIMIT);
	FT_CHECK(ft_buf_addf(&b, "%d", 7) == FT_ELIMIT);
	FT_CHECK_STR(b.ptr, "0123456789");
	FT_CHECK(b.cap <= 11); /* never allocates past max + NUL */
	/* A length that would overflow size_t arithmetic is refused, not wrapped. */
	FT_CHECK(ft_buf_grow(&b, SIZE_MAX) == FT_ELIMIT);
	ft_buf_release(&b);
}

FT_TEST(buf_grows_binary_safe)
{
	struct ft_buf b = FT_BUF_INIT(1 << 20);
	unsigned char bytes[256];
	for (int i = 0; i < 256; i++)
		bytes[i] = (unsigned char)i;
	for (int i = 0; i < 1000; i++)
		FT_CHECK(ft_buf_add(&b, bytes, sizeof(bytes)) == FT_OK);
	FT_CHECK_INT(b.len, 256000);
	FT_CHECK(b.ptr[256000] == '\0');
	FT_CHECK((unsigned char)b.ptr[256 * 500 + 200] == 200);
	ft_buf_release(&b);
}

FT_TEST(buf_take_moves_ownership)
{
	struct ft_buf b = FT_BUF_INIT(100);
	char *empty = ft_buf_take(&b);
	FT_CHECK_STR(empty, "");
	free(empty);
	FT_CHECK(ft_buf_addstr(&b, "hello") == FT_OK);
	char *s = ft_buf_take(&b);
	FT_CHECK_STR(s, "hello");
	FT_CHECK(b.ptr == NULL && b.len == 0);
	FT_CHECK(ft_buf_addstr(&b, "again") == FT_OK); /* still usable */
	FT_CHECK_STR(b.ptr, "again");
	free(s);
	ft_buf_release(&b);
}

FT_TEST_MAIN()
