-- The sample schema from the original DBSync brief: a serial key, a varchar key and a composite key,
-- with TEXT[], DATE and DECIMAL(10,2) columns.
CREATE TABLE Users (
    id SERIAL PRIMARY KEY,
    first_name VARCHAR(255) NOT NULL,
    user_name VARCHAR(255) NOT NULL,
    email VARCHAR(255) NOT NULL UNIQUE,
    avatar VARCHAR(255),
    homepage VARCHAR(255),
    date_of_birth DATE,
    address TEXT,
    interests TEXT[]
);

CREATE TABLE Restaurant (
    id VARCHAR(255) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    address TEXT,
    rating INT,
    tags TEXT[]
);

CREATE TABLE Visit (
    user_id INT REFERENCES Users(id),
    restaurant_id VARCHAR(255) REFERENCES Restaurant(id),
    amount_spent DECIMAL(10, 2) NOT NULL,
    visit_rating INT,
    PRIMARY KEY (user_id, restaurant_id)
);
