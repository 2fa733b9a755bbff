# cmake -DROOT=<source dir> -DDOCS="README.md;docs/01-concepts.md;..." -P check_doc_snippets.cmake
#
# Every ```cpp block of the docs must be a copy of code that the build compiles
# and ctest runs. The line before the block names where that code is:
#
#     <!-- snippet: examples/calc.cpp#readme -->
#     ```cpp
#
# and that file (relative to ROOT) marks it with
#
#     // snippet begin: readme
#     ...
#     // snippet end: readme
#
# A name may be marked several times (e.g. an #include at the top and a body in
# main()); the pieces are joined in file order. Each piece loses the indentation
# of its "snippet begin" line, so a snippet may come from inside a function.
# Fails, naming the doc, the block and the source, when a ```cpp block has no
# marker, a marker names no code, or a block differs from its code (the doc's
# copy is then written next to the build for diffing).
cmake_minimum_required(VERSION 3.16)   # policies of script mode: while(TRUE), if(TRUE)

function(fail)
  string(JOIN "" message ${ARGV})
  message(FATAL_ERROR "${message}")
endfunction()

# The code marked `name` in `file`, without the indentation of its markers.
function(marked_code file name out)
  if(NOT EXISTS "${ROOT}/${file}")
    fail("snippet source ${file} does not exist")
  endif()
  file(READ "${ROOT}/${file}" text)
  set(begin_mark "// snippet begin: ${name}\n")
  set(end_mark "// snippet end: ${name}")
  set(code "")
  set(pieces 0)
  while(TRUE)
    string(FIND "${text}" "${begin_mark}" at)
    if(at EQUAL -1)
      break()
    endif()
    # The indentation of the begin line: what lies between the line start and the mark.
    string(SUBSTRING "${text}" 0 ${at} before)
    string(FIND "${before}" "\n" line_start REVERSE)
    math(EXPR line_start "${line_start} + 1")
    math(EXPR indent_length "${at} - ${line_start}")
    string(SUBSTRING "${text}" ${line_start} ${indent_length} indent)
    if(NOT indent MATCHES "^[ ]*$")
      fail("${file}: \"${begin_mark}\" must be alone on its line")
    endif()
    string(LENGTH "${begin_mark}" skip)
    math(EXPR at "${at} + ${skip}")
    string(SUBSTRING "${text}" ${at} -1 text)
    string(FIND "${text}" "${end_mark}" end)
    if(end EQUAL -1)
      fail("${file}: \"// snippet begin: ${name}\" has no \"${end_mark}\"")
    endif()
    string(SUBSTRING "${text}" 0 ${end} piece)
    string(SUBSTRING "${text}" ${end} -1 text)
    # Drop the end line's own indentation (the piece ends with the last code line's "\n").
    string(FIND "${piece}" "\n" last_newline REVERSE)
    math(EXPR keep "${last_newline} + 1")
    string(SUBSTRING "${piece}" 0 ${keep} piece)
    if(NOT indent STREQUAL "")
      # Not "(^|\n)": in REGEX REPLACE, ^ matches where each search resumes too.
      string(REPLACE "\n${indent}" "\n" piece "\n${piece}")
      string(SUBSTRING "${piece}" 1 -1 piece)
    endif()
    string(APPEND code "${piece}")
    math(EXPR pieces "${pieces} + 1")
  endwhile()
  if(pieces EQUAL 0)
    fail("${file} has no \"${begin_mark}\"")
  endif()
  set(${out} "${code}" PARENT_SCOPE)
endfunction()

set(checked 0)
foreach(doc IN LISTS DOCS)
  file(READ "${ROOT}/${doc}" text)
  set(block_number 0)
  while(TRUE)
    string(FIND "${text}" "```cpp\n" at)
    if(at EQUAL -1)
      break()
    endif()
    math(EXPR block_number "${block_number} + 1")
    # The line before the fence must be the marker.
    string(SUBSTRING "${text}" 0 ${at} before)
    set(marker "")
    if(before MATCHES "<!-- snippet: ([^ #]+)#([A-Za-z0-9_.-]+) -->\n$")
      set(source "${CMAKE_MATCH_1}")
      set(name "${CMAKE_MATCH_2}")
    else()
      fail("${doc}: C++ block ${block_number} has no \"<!-- snippet: FILE#NAME -->\" line before it; "
           "every C++ snippet must be code that the tests compile")
    endif()
    math(EXPR at "${at} + 7")
    string(SUBSTRING "${text}" ${at} -1 text)
    string(FIND "${text}" "\n```\n" end)
    if(end EQUAL -1)
      fail("${doc}: C++ block ${block_number} is not closed")
    endif()
    math(EXPR end "${end} + 1")
    string(SUBSTRING "${text}" 0 ${end} block)
    string(SUBSTRING "${text}" ${end} -1 text)
    marked_code("${source}" "${name}" code)
    if(NOT block STREQUAL code)
      string(MAKE_C_IDENTIFIER "${doc}_${block_number}" copy_name)
      set(copy "${CMAKE_CURRENT_BINARY_DIR}/${copy_name}.cpp")
      file(WRITE "${copy}" "${block}")
      file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/${copy_name}.source.cpp" "${code}")
      fail("${doc}: C++ block ${block_number} differs from \"${name}\" in ${source}. "
           "the doc's copy is in ${copy}, the marked code in ${copy_name}.source.cpp beside it")
    endif()
    math(EXPR checked "${checked} + 1")
  endwhile()
endforeach()
if(checked EQUAL 0)
  fail("no C++ snippets found in ${DOCS}: a check that checks nothing passes wrongly")
endif()
message(STATUS "${checked} C++ snippets match their sources")
