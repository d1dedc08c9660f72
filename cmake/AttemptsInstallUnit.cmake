# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt): installs
# deploy/systemd/attempts.service with ExecStart= and Documentation= pointing into the prefix
# being installed to, which `cmake --install --prefix` may change after configuring.
# Set before this runs: ATTEMPTS_UNIT_SOURCE, ATTEMPTS_UNIT_RENDERED, ATTEMPTS_BINDIR,
# ATTEMPTS_DOCDIR.
file(READ "${ATTEMPTS_UNIT_SOURCE}" unit)
# The unit in the repository names the default prefix, /usr/local.
foreach(expected IN ITEMS "ExecStart=/usr/local/bin/attempts-server "
                          "Documentation=file:///usr/local/share/doc/attempts/")
  string(FIND "${unit}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${ATTEMPTS_UNIT_SOURCE} has no '${expected}' to point at the install prefix")
  endif()
endforeach()
string(REPLACE "ExecStart=/usr/local/bin/"
               "ExecStart=${CMAKE_INSTALL_PREFIX}/${ATTEMPTS_BINDIR}/" unit "${unit}")
string(REPLACE "Documentation=file:///usr/local/share/doc/attempts/"
               "Documentation=file://${CMAKE_INSTALL_PREFIX}/${ATTEMPTS_DOCDIR}/" unit "${unit}")
get_filename_component(rendered_dir "${ATTEMPTS_UNIT_RENDERED}" DIRECTORY)
file(MAKE_DIRECTORY "${rendered_dir}")
file(WRITE "${ATTEMPTS_UNIT_RENDERED}" "${unit}")
# file(INSTALL) adds DESTDIR and lists the file in install_manifest.txt, as install(FILES) does.
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${ATTEMPTS_UNIT_RENDERED}")
