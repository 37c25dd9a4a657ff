# Runs at install time (packaging/CMakeLists.txt), when CMAKE_INSTALL_PREFIX
# is the prefix actually installed to. The config goes where
# GNUInstallDirs would put it: /etc for the /usr prefix, else <prefix>/etc.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr")
  set(sysconfdir "/etc")
else()
  set(sysconfdir "${prefix}/etc")
endif()
set(CMAKE_INSTALL_FULL_BINDIR "${prefix}/${AGENTVM_BINDIR}")
set(CMAKE_INSTALL_FULL_SYSCONFDIR "${sysconfdir}")
set(root "$ENV{DESTDIR}")

set(unit "${root}${prefix}/lib/systemd/system/agentvmd.service")
message(STATUS "Installing: ${unit}")
configure_file("${AGENTVM_PACKAGING_DIR}/agentvmd.service.in" "${unit}" @ONLY)

# Never overwrites an operator's config (a package upgrade leaves it to
# dpkg's conffile handling; it ships the file itself).
set(config "${root}${sysconfdir}/agentvm/agentvmd.yaml")
if(NOT EXISTS "${config}")
  message(STATUS "Installing: ${config}")
  configure_file("${AGENTVM_PACKAGING_DIR}/agentvmd.yaml" "${config}" COPYONLY)
else()
  message(STATUS "Kept: ${config}")
endif()

set(link "${root}${prefix}/${AGENTVM_BINDIR}/agentvm-build-image")
file(RELATIVE_PATH target "${prefix}/${AGENTVM_BINDIR}" "${prefix}/${AGENTVM_BUILDER}")
message(STATUS "Installing: ${link} -> ${target}")
file(CREATE_LINK "${target}" "${link}" SYMBOLIC)
