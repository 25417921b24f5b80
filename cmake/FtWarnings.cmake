# Warning flags and sanitizers, applied to every C target of the project via
# ft_target_defaults(<target>).
set(FT_C_WARNINGS
  -Wall -Wextra -Wshadow -Wformat=2 -Wformat-overflow=2
  -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition
  -Wpointer-arith -Wcast-qual -Wundef -Wvla -Wimplicit-fallthrough
  -Wwrite-strings -Wredundant-decls -Wnested-externs -Wmissing-include-dirs
  -Wunused -Wuninitialized -Wcast-align
  -Wlogical-op -Wduplicated-cond -Wduplicated-branches
  # Messages are deliberately cut to their fixed-size fields with snprintf
  # (struct ft_err); GCC's truncation guesses would flag every such call.
  -Wno-format-truncation)
if(CMAKE_C_COMPILER_ID STREQUAL "Clang")
  list(REMOVE_ITEM FT_C_WARNINGS -Wlogical-op -Wduplicated-cond -Wduplicated-branches
       -Wformat-overflow=2 -Wno-format-truncation)
endif()
if(FT_WERROR)
  list(APPEND FT_C_WARNINGS -Werror)
endif()

set(FT_SAN_FLAGS "")
if(FT_ASAN)
  list(APPEND FT_SAN_FLAGS -fsanitize=address -fno-omit-frame-pointer)
endif()
if(FT_UBSAN)
  list(APPEND FT_SAN_FLAGS -fsanitize=undefined -fno-sanitize-recover=undefined)
endif()
if(FT_TSAN)
  list(APPEND FT_SAN_FLAGS -fsanitize=thread)
endif()
if(FT_SAN_FLAGS)
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:${FT_SAN_FLAGS}>")
  add_link_options(${FT_SAN_FLAGS})
endif()

function(ft_target_defaults tgt)
  target_compile_options(${tgt} PRIVATE "$<$<COMPILE_LANGUAGE:C>:${FT_C_WARNINGS}>")
  target_compile_definitions(${tgt} PRIVATE _GNU_SOURCE)
endfunction()

# A libFuzzer build instruments every C target for coverage (the harness
# alone is linked with -fsanitize=fuzzer), otherwise the fuzzer gets no
# feedback from the libraries it exercises.
if(FT_FUZZ)
  add_compile_options("$<$<COMPILE_LANGUAGE:C>:-fsanitize=fuzzer-no-link>")
endif()
