# Installs the library, its headers and a package config so that find_package(glimpse) works.

include(CMakePackageConfigHelpers)

install(TARGETS glimpse glimpse_cli EXPORT glimpseTargets
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/glimpse ${PROJECT_BINARY_DIR}/include/glimpse
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

set(GLIMPSE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/glimpse)
install(EXPORT glimpseTargets NAMESPACE glimpse:: DESTINATION ${GLIMPSE_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/glimpseConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/glimpseConfig.cmake
                              INSTALL_DESTINATION ${GLIMPSE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/glimpseConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/glimpseConfig.cmake
              ${PROJECT_BINARY_DIR}/glimpseConfigVersion.cmake
        DESTINATION ${GLIMPSE_CMAKE_DIR})
