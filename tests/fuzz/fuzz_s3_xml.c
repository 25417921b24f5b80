/*
 * fuzz_s3_xml.c - the S3 answer scanner (registry/src/s3_xml.c) on arbitrary
 * bytes: every tag the S3 backend reads, walked to the end as the sweep
 * does, plus the timestamp parser on each <Initiated>. It must never crash
 * or read out of bounds, must always move forward, and what it returns must
 * be a NUL-terminated string that fits.
 */
#include "../../registry/src/registry_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tags[] = {
		"Upload",      "Key",		"UploadId",	      "Initiated",
		"IsTruncated", "NextKeyMarker", "NextUploadIdMarker", "Code",
		"Message",     "ETag"
	};
	const char *x = (const char *)data;
	for (size_t t = 0; t < FT_ARRAY_LEN(tags); t++) {
		char out[300];
		size_t pos = 0;
		while (ft_s3_xml_text(x, size, tags[t], &pos, out, sizeof(out))) {
			FT_ASSERT(pos <= size);
			FT_ASSERT(strlen(out) < sizeof(out));
			if (strcmp(tags[t], "Initiated") == 0)
				(void)ft_s3_iso8601_parse(out);
			if (strcmp(tags[t], "Upload") == 0) {
				char key[300];
				size_t p2 = 0;
				while (ft_s3_xml_text(out, strlen(out), "Key", &p2, key,
						      sizeof(key)))
					FT_ASSERT(p2 <= strlen(out));
			}
		}
	}
	return 0;
}
