# Installs the build tree into a staging prefix, then configures, builds and runs the consumer
# project against it. Run with cmake -P (see tests/CMakeLists.txt).
file(REMOVE_RECURSE ${GLIMPSE_STAGE})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${GLIMPSE_BINARY_DIR} --prefix ${GLIMPSE_STAGE}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install into ${GLIMPSE_STAGE}/prefix failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${GLIMPSE_CONSUMER_SOURCE} -B ${GLIMPSE_STAGE}/build
                        -DCMAKE_PREFIX_PATH=${GLIMPSE_STAGE}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "configuring the consumer against the staged install failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${GLIMPSE_STAGE}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "building the consumer failed")
endif()
execute_process(COMMAND ${GLIMPSE_STAGE}/build/consumer ${GLIMPSE_STAGE}/x.safetensors
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "the consumer failed to run")
endif()
