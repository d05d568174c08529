//! MariaDB scenarios against the real server on 127.0.0.1:3306.
