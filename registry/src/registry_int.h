/*
 * registry_int.h - private to registry/ (and its tests and fuzz harness).
 */
#ifndef FT_REGISTRY_INT_H
#define FT_REGISTRY_INT_H

#include "ft/fs.h"
#include "ft/registry.h"

/*
 * The little XML an S3 server answers with is read by one scanner, not a
 * parser: ft_s3_xml_text() finds the next <tag>...</tag> at or after *pos in
 * xml[0..len), copies its text into out (NUL-terminated, entities &amp;
 * &lt; &gt; &quot; &apos; &#NN; &#xNN; decoded, non-ASCII numeric ones
 * refused) and moves *pos past the closing tag. Returns true when found
 * and it fit; false otherwise (then *pos is unchanged). Nested elements
 * are not understood: the text of <Upload> would include its children's
 * markup, so callers ask for leaf tags (<Key>, <UploadId>, <Code>).
 * Elements with attributes ("<Key a=1>") and self-closing ones are not
 * matched.
 *
 *   answer                                  tags read
 *   InitiateMultipartUploadResult           UploadId
 *   ListMultipartUploadsResult              Key, UploadId, Initiated,
 *                                           IsTruncated, NextKeyMarker,
 *                                           NextUploadIdMarker
 *   CompleteMultipartUploadResult / Error   Code, Message, ETag
 */
bool ft_s3_xml_text(const char *xml, size_t len, const char *tag, size_t *pos, char *out,
		    size_t outsz);

/* "2026-12-04T04:33:29Z" or "...29.123Z" as seconds since the epoch; -1 if
 * it is not that form. */
long long ft_s3_iso8601_parse(const char *s);

#endif
