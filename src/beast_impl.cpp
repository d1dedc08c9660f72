// Compiles Asio and Beast once for the whole program (BOOST_*_SEPARATE_COMPILATION), instead of
// in every translation unit that includes them.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
// Asio's TLS (the key source's https client), compiled here for the same reason.
#include <boost/asio/ssl/impl/src.hpp>
